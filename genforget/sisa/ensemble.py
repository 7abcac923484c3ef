"""``train`` / ``load`` a SISA ensemble and ``delete`` records from it exactly.

Layout of ``output_dir``::

    sisa.json                 config, base model location and fingerprint, shard sizes
    manifest.json             {sha256(id): [shard, slice]}   (never ids or text)
    shard-<k>/                shard k's current adapter (a PEFT adapter dir)
    checkpoints/shard-<k>/ckpt-<r>.pt   adapter + AdamW + RNG states before stage r (r = 0..R)
    data/shard-<k>.pt         {sha256(id): token ids + labels}: SISA must keep its training data
                              to retrain; a deleted record's tokens are removed from it
    tokenizer/, base/         the tokenizer; the base model when it has no local directory
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from genforget.config import make_config
from genforget.lm.data import Collator, tokenize_example
from genforget.sisa.aggregate import ShardMixtureLM
from genforget.sisa.shards import Manifest, SisaConfig, assign, id_hash
from genforget.sisa.training import ADAPTER, adapter_params, init_checkpoint, lora_config, train_shard


def base_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over every base tensor's name, shape and first 64 KiB: catches loading an
    ensemble over a different base without hashing gigabytes."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if "lora_" in name:
            continue
        name = name.replace("base_model.model.", "").replace(".base_layer", "")
        t = t.detach().cpu().contiguous().view(-1)[:16384]
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(t.float().numpy().tobytes())
    return h.hexdigest()


class SisaEnsemble:
    """S LoRA shard adapters over one frozen base, trained SISA-style; see :func:`train`."""

    def __init__(self, root: Path, peft_model, tokenizer, cfg: SisaConfig, manifest: Manifest) -> None:
        self.root, self.peft_model, self.tokenizer = root, peft_model, tokenizer
        self.config, self.manifest = cfg, manifest
        self._loaded: set[int] = set()
        self._merged_stale = True

    # ------------------------------------------------------------------ data store
    def _store_path(self, shard: int) -> Path:
        return self.root / "data" / f"shard-{shard}.pt"

    def _store(self, shard: int) -> dict[str, dict]:
        p = self._store_path(shard)
        return torch.load(p, weights_only=False) if p.exists() else {}

    # ------------------------------------------------------------------ training
    def _train(self, shard: int, start_stage: int, store: dict[str, dict]) -> int:
        steps = train_shard(
            self.peft_model,
            self.config,
            shard,
            self.manifest,
            store,
            self.root,
            start_stage,
            Collator(self.tokenizer),
        )
        self.peft_model.save_pretrained(self.root / f"shard-{shard}", selected_adapters=[ADAPTER])
        if shard in self._loaded:  # refresh the in-memory copy used for generation, bit for bit
            src = dict(adapter_params(self.peft_model))
            with torch.no_grad():
                for n, p in adapter_params(self.peft_model, f"shard-{shard}"):
                    p.copy_(src[n.replace(f".shard-{shard}.", f".{ADAPTER}.")])
        self._merged_stale = True
        return steps

    def shard_sizes(self) -> list[int]:
        return [len(self.manifest.hashes(k)) for k in range(self.config.n_shards)]

    def delete(self, record_ids: list) -> dict:
        """Remove records exactly: each affected shard is retrained from the checkpoint before
        the earliest slice holding one of them; other shards are not touched.

        Returns ``{"records", "shards_touched", "steps", "seconds", "full_retrain_steps"}``.
        Raises ``KeyError`` (counting them, not naming them) when some ids were never trained.
        """
        t0 = time.perf_counter()
        hashes = sorted({id_hash(r) for r in record_ids})
        missing = [h for h in hashes if h not in self.manifest]
        if missing:
            raise KeyError(f"{len(missing)} of {len(hashes)} record ids are not in this ensemble's manifest")
        first: dict[int, int] = {}
        for h in hashes:
            s, r = self.manifest.entries[h]
            first[s] = min(first.get(s, r), r)
        steps = 0
        for shard in sorted(first):
            store = self._store(shard)
            for h in hashes:
                if self.manifest.entries.get(h, (-1,))[0] == shard:
                    del self.manifest.entries[h]
                    store.pop(h, None)
            torch.save(store, self._store_path(shard))  # the deleted tokens leave the disk too
            self.manifest.save(self.root / "manifest.json")
            steps += self._train(shard, first[shard], store)
        self._write_meta()
        return {
            "records": len(hashes),
            "shards_touched": sorted(first),
            "steps": steps,
            "seconds": time.perf_counter() - t0,
            "full_retrain_steps": self.full_train_steps(),
            "exact": True,
        }

    def full_train_steps(self) -> int:
        """Steps a full retrain of every shard from scratch would take on the current data."""
        total = 0
        for k in range(self.config.n_shards):
            store = self._store(k)
            for r in range(self.config.n_slices):
                total += self.config.stage_steps(sum(len(store[h]) for h in self.manifest.hashes(k, r)))
        return total

    # ------------------------------------------------------------------ inference
    def live_shards(self) -> list[int]:
        """Shards with at least one record (an empty shard's adapter is untrained: left out)."""
        return [k for k, n in enumerate(self.shard_sizes()) if n > 0]

    def _ensure_loaded(self) -> None:
        for k in range(self.config.n_shards):
            if k not in self._loaded:
                self.peft_model.load_adapter(str(self.root / f"shard-{k}"), adapter_name=f"shard-{k}")
                self._loaded.add(k)

    def model(self, mode: str = "mixture") -> ShardMixtureLM:
        """A causal-LM view for ``genforget.evaluation.evaluate``: ``mixture`` averages the live shards'
        next-token distributions (S forwards); ``merged`` runs one forward through the average of
        their weight deltas."""
        if mode not in ("mixture", "merged"):
            raise ValueError(f"mode must be 'mixture' or 'merged' (got {mode!r})")
        self._ensure_loaded()
        names = [f"shard-{k}" for k in self.live_shards()]
        if mode == "mixture":
            return ShardMixtureLM(self.peft_model, names)
        if self._merged_stale or "merged" not in self.peft_model.peft_config:
            if "merged" in self.peft_model.peft_config:
                self.peft_model.delete_adapter("merged")
            w = 1.0 / len(names)
            self.peft_model.add_weighted_adapter(names, [w] * len(names), "merged", combination_type="cat")
            self._merged_stale = False
        return ShardMixtureLM(self.peft_model, ["merged"])

    def _write_meta(self, extra: dict | None = None) -> None:
        path = self.root / "sisa.json"
        meta = json.loads(path.read_text()) if path.exists() else {}
        meta.update(extra or {})
        meta.update(config=self.config.to_dict(), shard_sizes=self.shard_sizes(), records=len(self.manifest))
        path.write_text(json.dumps(meta, indent=1))


def record_features(rec: dict, tokenizer, max_length: int) -> list[dict]:
    """A record's training examples: one per entry of ``rec["texts"]`` when it has that list
    (a data subject owning several examples, all deleted together), else the record itself."""
    if isinstance(rec.get("texts"), list):
        return [tokenize_example({"text": t}, tokenizer, max_length) for t in rec["texts"]]
    return [tokenize_example({k: v for k, v in rec.items() if k != "id"}, tokenizer, max_length)]


def train(
    model: torch.nn.Module,
    tokenizer,
    records: list[dict],
    n_shards: int = 4,
    n_slices: int = 1,
    output_dir: str | Path = "runs/sisa",
    **training_fields,
) -> SisaEnsemble:
    """Fine-tune ``model`` as ``n_shards`` LoRA adapters x ``n_slices`` checkpointed slices.

    ``records``: example dicts (``text``, ``prompt``+``target`` or ``question``+``answer``, or
    ``texts``: a list of texts of one data subject), each with a unique ``"id"``. ``training_fields``: :class:`SisaConfig` fields. ``model`` gets
    the LoRA layers injected (its base weights stay frozen and unchanged). Deterministic given
    ``seed``. ``n_shards = n_slices = 1`` is plain LoRA fine-tuning.
    """
    from peft import get_peft_model

    cfg = make_config(SisaConfig, {"n_shards": n_shards, "n_slices": n_slices, **training_fields})
    root = Path(output_dir)
    if (root / "sisa.json").exists():
        raise FileExistsError(
            f"{root} already holds a SISA ensemble; load it with sisa.load or pick a new dir"
        )
    ids = [r.get("id") for r in records]
    if any(i is None for i in ids) or len(set(map(str, ids))) != len(ids):
        raise ValueError("every record needs a unique 'id'")
    root.mkdir(parents=True, exist_ok=True)
    meta = {"fingerprint": base_fingerprint(model)}
    src = getattr(model, "name_or_path", "") or ""
    if src and Path(src).is_dir():
        meta["base_model"] = str(Path(src).resolve())
    else:
        model.save_pretrained(root / "base")
        meta["base_model"] = "base"
    tokenizer.save_pretrained(root / "tokenizer")
    manifest = Manifest()
    stores: list[dict[str, dict]] = [{} for _ in range(cfg.n_shards)]
    for rec in records:
        h = id_hash(rec["id"])
        shard, slc = assign(h, cfg.n_shards, cfg.n_slices)
        manifest.entries[h] = (shard, slc)
        stores[shard][h] = record_features(rec, tokenizer, cfg.max_length)
    peft_model = get_peft_model(model, lora_config(cfg, model))
    ens = SisaEnsemble(root, peft_model, tokenizer, cfg, manifest)
    manifest.save(root / "manifest.json")
    (root / "data").mkdir(exist_ok=True)
    for k in range(cfg.n_shards):
        torch.save(stores[k], ens._store_path(k))
        init_checkpoint(peft_model, cfg, k, root)
        ens._train(k, 0, stores[k])
    ens._write_meta(meta)
    return ens


def load(output_dir: str | Path, model: torch.nn.Module | None = None, tokenizer=None) -> SisaEnsemble:
    """Reopen a saved ensemble; the base is reloaded from where ``train`` recorded it unless
    ``model`` is given, and must match the training base's fingerprint."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = Path(output_dir)
    if not (root / "sisa.json").is_file():
        raise FileNotFoundError(f"{root} holds no SISA ensemble (no sisa.json)")
    meta = json.loads((root / "sisa.json").read_text())
    cfg = SisaConfig(**meta["config"])
    if model is None:
        base = meta["base_model"]
        model = AutoModelForCausalLM.from_pretrained(root / base if base == "base" else base)
    if base_fingerprint(model) != meta["fingerprint"]:
        raise ValueError("this base model is not the one the ensemble was trained on (fingerprint differs)")
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(root / "tokenizer")
    peft_model = get_peft_model(model, lora_config(cfg, model))
    peft_model.eval()
    return SisaEnsemble(root, peft_model, tokenizer, cfg, Manifest.load(root / "manifest.json"))
