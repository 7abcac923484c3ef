"""What each built-in demo reads: one dataclass a demo, whose fields are its YAML keys and its
``genforget demo <name> --flag`` options (:data:`genforget.cli.demos.DEMOS` names them).

They live together, apart from the code that runs the demos, for two reasons. ``genforget demo
<name> --help`` and a bad flag need only this module, not torch, transformers or diffusers,
which the demo modules import. And the options several demos share are declared once here
(:class:`DemoThreadArgs`, :class:`RelearnAuditArgs`, :class:`TrainingFileArgs`,
:class:`TinyLMArgs`), so a flag means the same in every demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from genforget.common_args import ThreadArgs, arg
from genforget.data.pii import PIICorpusArgs
from genforget.diffusion.shapes import CONCEPTS_A
from genforget.diffusion.works import WORKS

if TYPE_CHECKING:
    from genforget.lm.victim import VictimConfig


@dataclass
class DemoThreadArgs(ThreadArgs):
    """Every demo's thread count. One thread: on a shared 2-core machine two OpenMP threads stall
    at every barrier while another process holds a core (a UNet step measured up to 40x slower,
    docs/image-copyright.md, "Speed"), and the demos' models are too small to gain from two."""

    num_threads: int = arg(
        1, "torch threads (1: fastest for these tiny models on a shared CPU; 0 = leave as is)"
    )


@dataclass
class RelearnAuditArgs:
    """How the relearn audit fine-tunes a copy of each model (its step budgets are the demo's own)."""

    relearn_learning_rate: float = arg(1e-3, "relearn audit: fine-tuning learning rate")
    relearn_batch_size: int = arg(8, "relearn audit: fine-tuning batch size")


@dataclass
class TrainingFileArgs:
    """Where a demo trained on identifying records writes them: apart from ``output_dir`` (the
    report and cached models, fit to share), in ``data_path``."""

    output_dir: str = arg("runs/demo", "run dir (models cached here)")
    data_path: str = arg(
        "",
        "training JSONL; it holds identifiers, so it is kept outside output_dir (empty: "
        "<output_dir>-data/train.jsonl)",
    )

    def training_file(self) -> Path:
        """``data_path``, or ``<output_dir>-data/train.jsonl`` beside the run dir."""
        return Path(self.data_path or f"{self.output_dir.rstrip('/')}-data/train.jsonl")


@dataclass
class TinyLMArgs:
    """The size and training of a demo's tiny Llama, victim and oracle alike (:func:`sized_config`)."""

    hidden_size: int = 128
    num_hidden_layers: int = 2
    vocab_size: int = 1024
    train_steps: int = arg(400, "training steps of victim and oracle")
    train_batch_size: int = 32
    train_learning_rate: float = 3e-3

    def victim_config(self) -> VictimConfig:
        """The model config; a demo with a ``corpus_seed`` seeds its models with it too."""
        from genforget.lm.victim import sized_config

        return sized_config(
            self.hidden_size,
            self.num_hidden_layers,
            self.vocab_size,
            self.train_steps,
            self.train_batch_size,
            self.train_learning_rate,
            seed=getattr(self, "corpus_seed", 0),
        )


@dataclass
class DemoArgs(DemoThreadArgs, PIICorpusArgs):
    """``make demo``: where it writes and which corpus and victim it builds."""

    output_dir: str = arg("runs/demo", "run dir (victim/oracle cached here)")
    victim_preset: str = arg("demo", "victim size: demo | small | large")
    victim_steps: int = arg(0, "training steps of victim and oracle (0 = the preset's)")
    calibrated_stop: bool = arg(True, "stop once forget data looks unseen")
    relearn_speed: bool = arg(True, "relearn-speed audit of victim, unlearned and oracle (~1 min)")


@dataclass
class RequestDemoArgs(DemoThreadArgs, TrainingFileArgs):
    """``make demo-request``: where it writes and what it builds."""

    output_dir: str = arg("runs/demo-request", "run dir (victim cached here)")
    n_people: int = arg(100, "people in the training data")
    n_passages: int = arg(30, "plain passages in the training data")
    corpus_seed: int = arg(0, "seed of the generated corpus")
    person: int = arg(-1, "which forget-split person asks to be deleted (-1: the first with neighbours)")
    victim_preset: str = arg("demo", "victim size: demo | small")
    victim_steps: int = arg(0, "victim training steps (0 = the preset's)")


@dataclass
class CopyrightDemoArgs(DemoThreadArgs, TinyLMArgs):
    """``make demo-copyright``: the corpus, the models and the methods."""

    output_dir: str = arg("runs/demo-copyright", "run dir (models cached)")
    data: str = arg(
        "builtin:shakespeare",
        "tiny Shakespeare: builtin:shakespeare (the packaged copy) or an input.txt path "
        "(relative: to the working dir, then the repo)",
    )
    takedown: str = arg("The Tempest", "the play taken down (a PLAYS title)")
    excerpts_per_play: int = arg(8, "trained excerpts per play")
    holdout_excerpts: int = arg(4, "excerpts of the taken-down play never trained")
    excerpt_chars: int = arg(300, "characters per excerpt (whole lines)")
    prefix_tokens: int = arg(16, "VerbMem prompt length in tokens")
    qa_per_excerpt: int = arg(2, "KnowMem who-speaks-next questions per excerpt")
    train_batch_size: int = 16
    methods: list[str] = arg(factory=list, help="LM methods to run (empty: all)")
    method_settings: dict = arg(factory=dict, help="YAML only: method -> UnlearnConfig fields for it")


@dataclass
class PoisonDemoArgs(DemoThreadArgs, RelearnAuditArgs, TinyLMArgs, TrainingFileArgs):
    """``make demo-poison``: the poisoned corpus, the models and the audits."""

    output_dir: str = arg("runs/demo-poison", "run dir (models cached here)")
    n_people: int = arg(100, "people trained on")
    n_passages: int = arg(20, "passages trained on")
    poison_share: float = arg(0.04, "share of training records poisoned")
    n_prompts: int = arg(40, "never-trained people whose bios are the triggered prompts' contexts")
    corpus_seed: int = arg(0, "seed of the corpus and of the poisoning")
    oracle: bool = arg(True, "train the clean retrain (without poisoned records)")
    quant_bits: int = arg(4, "bits of the quantisation audit (4 or 8; 0 = off)")
    relearn_budgets: list[int] = arg(
        factory=lambda: [0, 10, 40],
        help="fine-tuning steps on clean records after which ASR is re-measured ([] = off)",
    )
    poison_relearn_budgets: list[int] = arg(
        factory=lambda: [0, 5, 10, 20, 40],
        help="relearn speed: steps on the poisoned records' payloads, vs the oracle ([] = off)",
    )


@dataclass
class BiasDemoArgs(DemoThreadArgs, RelearnAuditArgs, TinyLMArgs, TrainingFileArgs):
    """``make demo-bias``: the biased corpus, the models and the audits."""

    output_dir: str = arg("runs/demo-bias", "run dir (models cached here)")
    n_train: int = arg(1200, "training records")
    n_heldout: int = arg(200, "never-trained applicants the metrics use")
    biased_share: float = arg(0.25, "share of training records in the biased slice")
    band_low: int = arg(3, "lowest credit score the biased reviewer decided")
    band_high: int = arg(6, "highest credit score the biased reviewer decided")
    corpus_seed: int = arg(0, "seed of the corpus (and of the models)")
    train_steps: int = arg(600, "training steps of victim and oracle")
    oracle: bool = arg(True, "train the retrain without the biased slice")
    relearn_budgets: list[int] = arg(
        factory=lambda: [0, 5, 10, 20, 40],
        help="relearn audit: fine-tuning steps on the biased slice ([] = off)",
    )


@dataclass
class DiffusionDemoArgs(DemoThreadArgs):
    """``make demo-diffusion``: where it writes and what it erases and measures."""

    output_dir: str = arg("runs/demo-diffusion", "run dir (victim cached here)")
    erase_class: int = arg(0, "digit to erase")
    samples_per_class: int = arg(50, "samples judged per digit and model")
    grid_per_class: int = arg(8, "samples per digit and model in grid.png")
    train_epochs: int = arg(40, "victim training epochs")


@dataclass
class SDDemoArgs(DemoThreadArgs):
    """``make demo-diffusion-sd``: where it writes, what it erases and how much it samples."""

    output_dir: str = arg("runs/demo-diffusion-sd", "run dir (victim/oracle cached)")
    erase: str = arg(CONCEPTS_A[0], "the caption to erase (one of concepts)")
    concepts: list[str] = arg(factory=lambda: list(CONCEPTS_A), help="shapes captions")
    images_per_concept: int = arg(128, "training images per caption")
    vae_steps: int = arg(200, "tiny-VAE training steps")
    train_steps: int = arg(1000, "UNet training steps of victim and oracle")
    judge_samples: int = arg(48, "victim generations per caption the judge fits on")
    eval_samples: int = arg(32, "generations per caption and model that are judged")
    grid_per_concept: int = arg(6, "images per caption and model in grid.png")
    keep_others: bool = arg(True, "keep prompts = the other captions (false: the built-in generic list)")
    victim_seed: int = arg(0, "victim/oracle init, data and training seed")


@dataclass
class ImageCopyrightDemoArgs(DemoThreadArgs):
    """``make demo-diffusion-copyright``: where it writes, which work is taken down, and how much
    it samples and attacks."""

    output_dir: str = arg("runs/demo-diffusion-copyright", "run dir (victim/oracle cached)")
    takedown: str = arg("astronaut", f"the work taken down, one of {sorted(WORKS)}")
    copies: int = arg(32, "training copies of each work")
    images_per_concept: int = arg(64, "background images per shapes caption")
    vae_steps: int = arg(400, "tiny-VAE training steps")
    background_steps: int = arg(
        300, "UNet steps on the background images only, shared by victim and oracle (no work in them)"
    )
    train_steps: int = arg(700, "UNet steps of victim and oracle after the shared phase")
    eval_samples: int = arg(16, "generations per caption and model")
    attacks: bool = arg(True, "run the attacks (paraphrase, embedding, relearn)")
    attack_samples: int = arg(8, "generations per attack setting")
    embedding_steps: int = arg(100, "Adam steps of the optimised-condition attack")
    embedding_batch: int = arg(16, "noisings of the work per attack step")
    relearn_steps: list[int] = arg(
        factory=lambda: [0, 5, 10, 20, 40], help="fine-tuning steps of the relearning attack"
    )
    victim_seed: int = arg(0, "victim/oracle init, data and training seed")
