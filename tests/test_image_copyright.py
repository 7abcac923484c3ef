"""Image copyright takedowns: the extraction metric (hand-computed), the built-in works, locating
resized / recompressed copies, the suite's table and checks, and the certificate's privacy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from genforget.diffusion.image_locate import hamming, locate_images, phash, precision_recall
from genforget.diffusion.replication import (
    carlini_ratio,
    extraction,
    nearest_caption_share,
    rms_distances,
    ssim,
)
from genforget.diffusion.works import WORKS, load_work, load_work_original, works_dataset


def _const(*values: float, size: int = 4) -> torch.Tensor:
    return torch.stack([torch.full((3, size, size), v) for v in values])


def test_rms_distance_by_hand() -> None:
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[2.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]], [[[0.0, 0.0], [0.0, 0.5]]]])
    # sqrt(4/4), sqrt(4 * 1/4), sqrt(0.25/4)
    assert rms_distances(a, b)[0].tolist() == pytest.approx([1.0, 1.0, 0.25])


def test_carlini_ratio_by_hand() -> None:
    d = torch.tensor([[0.1, 0.5, 0.9]])
    ratio, nearest = carlini_ratio(d, n=3, alpha=0.5)
    assert ratio.item() == pytest.approx(0.1 / (0.5 * 0.5)) and nearest.item() == 0  # mean 0.5 -> 0.4
    assert carlini_ratio(d, n=2)[0].item() == pytest.approx(0.1 / (0.5 * 0.3))  # 0.667
    assert carlini_ratio(torch.tensor([[0.0001]]))[0].item() == pytest.approx(
        2.0
    )  # no neighbours: never a copy


def test_extraction_by_hand() -> None:
    train = _const(-1.0, 0.0, 1.0)
    gens = _const(-0.95, 0.5)
    # gen 0: d = 0.05, 0.95, 1.95 -> mean 0.9833, ratio 0.05 / 0.4917 = 0.102 < 1: a copy of row 0
    # gen 1: d = 1.5, 0.5, 0.5 -> ratio 0.5 / (0.5 * 0.8333) = 1.2: near row 1 but not a copy
    e = extraction(gens, train, target=0)
    assert e.ratios == pytest.approx([0.05 / (0.5 * 2.95 / 3), 1.2], abs=1e-4)
    assert e.copy_of_target == 0.5 and e.copy_of_any == 0.5
    assert e.nn_distances == pytest.approx([0.05, 0.5])
    assert extraction(gens, train, target=2).copy_of_target == 0.0
    assert extraction(gens, train, target=None).copy_of_target == 0.0


def test_nearest_caption_share_and_ssim_by_hand() -> None:
    train = _const(-1.0, 0.0, 1.0)
    caps = ["dark", "grey", "light"]
    assert nearest_caption_share(_const(-0.9, 0.1, 0.8, 0.9), train, caps, "light") == 0.5
    ref = torch.full((3, 8, 8), 0.5)
    assert ssim(ref.unsqueeze(0), ref) == pytest.approx([1.0])
    # constant images: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 * 2)^2
    c1 = (0.01 * 2) ** 2
    assert ssim(torch.zeros(1, 3, 8, 8), ref)[0] == pytest.approx(c1 / (0.25 + c1), rel=1e-6)


def test_works_ship_in_packages_and_duplicate() -> None:
    x = load_work("astronaut", 32)
    assert x.shape == (3, 32, 32) and -1.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.2
    data = works_dataset(["astronaut", "temple"], copies=5, concepts=["a photo of a red square"],
                         images_per_concept=6, size=16)  # fmt: skip
    assert len(data.captions) == 6 + 2 * 5 and data.work_of.count("temple") == 5
    assert data.captions[data.work_of.index("temple")] == WORKS["temple"].caption
    images, work_of, _ = data.distinct()
    assert len(images) == 8 and work_of.count("astronaut") == 1
    less = data.without(["astronaut"])
    assert "astronaut" not in less.work_of and len(less.captions) == 11
    with pytest.raises(ValueError, match="unknown work"):
        load_work("mona-lisa")


def _edited_copies(key: str, tmp_path) -> list:  # noqa: ANN001
    """A rights-holder's files: resized, recompressed, brightened copies of the original."""
    from PIL import Image, ImageEnhance

    orig = Image.fromarray(load_work_original(key)).convert("RGB")
    a = tmp_path / f"{key}_q40.jpg"
    orig.resize((orig.width // 3, orig.height // 3)).save(a, quality=40)
    b = tmp_path / f"{key}_bright.png"
    ImageEnhance.Brightness(orig.resize((orig.width // 6, orig.height // 6))).enhance(1.15).save(b)
    return [a, b, load_work_original(key)]


def test_locate_finds_edited_copies_and_nothing_else(tmp_path) -> None:  # noqa: ANN001
    data = works_dataset(list(WORKS), copies=3, concepts=["a photo of a red square", "a photo of a blue circle"],
                         images_per_concept=10, size=32)  # fmt: skip
    hashes = [phash(x) for x in data.images]
    for key in WORKS:
        truth = [i for i, w in enumerate(data.work_of) if w == key]
        for found in locate_images(_edited_copies(key, tmp_path), data.images, training_hashes=hashes):
            assert precision_recall(found.rows, truth) == (1.0, 1.0), key
    # a background image matches no work's takedown, and hashes of different works are far apart
    assert min(hamming(phash(load_work(k)), hashes[0]) for k in WORKS) > 10
    assert precision_recall([1, 2], [2, 3]) == (0.5, 0.5) and precision_recall([], []) == (1.0, 1.0)
    with pytest.raises(FileNotFoundError, match="takedown image"):
        locate_images([tmp_path / "missing.png"], data.images)


def test_replication_table_and_checks_from_known_images() -> None:
    from genforget.diffusion.replication_suite import replication_checks, replication_table

    concepts = ["a photo of a red square", "a photo of a blue circle"]
    data = works_dataset(["astronaut", "coffee"], copies=2, concepts=concepts, images_per_concept=30, size=16)
    train, work_of, caps = data.distinct()
    astro, coffee = train[work_of.index("astronaut")], train[work_of.index("coffee")]
    bg = {c: train[[i for i, x in enumerate(caps) if x == c][:4]] for c in concepts}  # real images: share 1
    cap_a, cap_c = WORKS["astronaut"].caption, WORKS["coffee"].caption
    victim = {cap_a: astro.expand(4, -1, -1, -1), cap_c: coffee.expand(4, -1, -1, -1), **bg}
    # unlearned: half of the astronaut generations still copies, the rest a background image
    unl = {**victim, cap_a: torch.stack([astro, astro, bg[concepts[0]][0], bg[concepts[0]][1]])}
    oracle = {**victim, cap_a: bg[concepts[1]]}
    models, per = replication_table(
        {"victim": victim, "unlearned": unl, "oracle": oracle}, data, ["astronaut"]
    )
    assert per["victim"][cap_a] == 1.0 and per["unlearned"][cap_a] == 0.5 and per["oracle"][cap_a] == 0.0
    assert models["unlearned"]["kept_extraction"] == 1.0 and models["victim"]["retained_quality"] == 1.0
    assert (
        models["victim"]["forgotten_ssim"] == pytest.approx(1.0)
        and models["unlearned"]["worst_kept_ratio"] == 1.0
    )
    checks = {c["name"].split(":")[0] + ":" + c["name"].split(":")[1][:12]: c for c in
              replication_checks(models, per, ["astronaut", "coffee"])}  # fmt: skip
    ok = [c["ok"] for c in checks.values()]
    assert ok == [True, False, True, True]  # 0.5 > oracle 0.0 + 0.05: the takedown check fails


def test_certificate_holds_no_work_and_chains(tmp_path) -> None:  # noqa: ANN001
    from genforget.config import UnlearnConfig
    from genforget.diffusion.takedown import ImageTakedown, LocatedWorks, image_certificate, write_certificate
    from genforget.requests.ledger import verify_ledger

    req = ImageTakedown(id="rights-holder-42", images=["/private/astronaut.jpg"])
    loc = LocatedWorks(rows=[3, 4], captions=[WORKS["astronaut"].caption], hashes=["ab" * 8])
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    rows = [{"name": "x", "before": None, "after": 0.0, "bar": "<= 0.05", "n": 4, "passed": True},
            {"name": "attack", "before": None, "after": 0.9, "bar": "shown", "n": 4, "passed": True, "gating": False}]  # fmt: skip
    cert = image_certificate(req, loc, 10, b"k" * 32, a, b, UnlearnConfig(method="esd"), rows, "t0")
    text = json.dumps(cert)
    for secret in ("rights-holder-42", "astronaut", "/private", WORKS["astronaut"].caption):
        assert secret not in text
    assert cert["request"]["kind"] == "image" and cert["located"]["records"] == 2 and cert["passed"]
    assert cert["model"]["before_sha256"] != cert["model"]["after_sha256"]
    write_certificate(cert, tmp_path / "c", tmp_path / "ledger.jsonl")
    write_certificate(cert, tmp_path / "c2", tmp_path / "ledger.jsonl")
    assert verify_ledger(tmp_path / "ledger.jsonl")[0]
    assert "kind: image" in (tmp_path / "c" / "certificate.md").read_text()
    assert not math.isnan(float(np.float32(1.0)))


def test_attacks_leave_the_attacked_model_as_it_was() -> None:
    """The relearning attack fine-tunes a copy (the model under test keeps its weights) and the
    optimised-condition attack freezes the UNet only while it runs."""
    from genforget.diffusion.data import DiffusionConfig
    from genforget.diffusion.image_attacks import embedding_attack, relearn_attack
    from genforget.diffusion.pipeline import TextToImage
    from genforget.diffusion.works_victim import build_works_pipeline

    model = TextToImage(build_works_pipeline(0, 16), None, "tiny")
    model.pipe.set_progress_bar_config(disable=True)
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    train = _const(-1.0, 0.0, 1.0, size=16)
    dcfg = DiffusionConfig(sample_steps=2)
    rel = relearn_attack(model, WORKS["coffee"].caption, train[0], train, 0, 2, dcfg, steps=(0, 2), copies=2)
    assert set(rel.per) == {"0", "2"} and rel.best_images.shape == (2, 3, 16, 16)
    emb = embedding_attack(model, WORKS["coffee"].caption, train[0], train, 0, 2, dcfg, steps=2, batch=2)
    assert set(emb.per) == {"step 0", "step 2"}
    assert all(torch.equal(before[k], v) for k, v in model.unet.state_dict().items())
    assert all(p.requires_grad for p in model.unet.parameters())


@pytest.mark.slow
def test_demo_end_to_end_small(tmp_path) -> None:  # noqa: ANN001
    """The demo at toy size (the victim barely trained): it runs every stage, writes the report,
    grid, certificate and ledger, finds the takedown's copies, and its gating checks say what they
    measured (a barely trained victim fails the memorisation check, and the demo says so)."""
    from genforget.config import UnlearnConfig
    from genforget.demos.image_copyright import run_image_copyright_demo
    from genforget.demos.options import ImageCopyrightDemoArgs
    from genforget.diffusion.data import DiffusionConfig
    from genforget.requests.ledger import verify_ledger

    args = ImageCopyrightDemoArgs(output_dir=str(tmp_path), copies=4, images_per_concept=8, vae_steps=5,
                                  train_steps=5, eval_samples=2, attack_samples=2, embedding_steps=2,
                                  relearn_steps=[0, 2], num_threads=1)  # fmt: skip
    ucfg = UnlearnConfig(method="esd", max_steps=2, batch_size=2, use_lora=True, lora_r=2)
    report = run_image_copyright_demo(
        args, ucfg, DiffusionConfig(num_model_samples=2, keep_samples=1, sample_steps=2)
    )
    for f in ("report.json", "report.md", "grid.png", "certificate/certificate.json", "ledger.jsonl"):
        assert (tmp_path / f).is_file(), f
    assert verify_ledger(tmp_path / "ledger.jsonl")[0]
    assert report["details"]["locate"]["precision"] == 1.0 and report["details"]["locate"]["recall"] == 1.0
    assert set(report["models"]) == {"victim", "unlearned", "oracle"}
    assert set(report["details"]["attacks"]) == {"victim", "unlearned", "oracle"}
    assert "astronaut" not in (tmp_path / "certificate/certificate.json").read_text()
