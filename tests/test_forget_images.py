"""``genforget forget`` on an image takedown: a saved tiny diffusers pipeline, an image folder with
metadata.jsonl, a ``kind: work`` request naming an image file (and one naming a SHA-256)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("imagehash")
pytest.importorskip("skimage")

from genforget.cli.forget import forget_main  # noqa: E402
from genforget.diffusion.works import WORKS, load_work_original, works_dataset  # noqa: E402
from genforget.requests.ledger import read_ledger, verify_ledger  # noqa: E402

FAST = ["--method", "esd", "--use_lora", "true", "--max_steps", "3", "--learning_rate", "0.01",
        "--batch_size", "2", "--retain_batch_size", "2", "--num_model_samples", "2", "--keep_samples", "1",
        "--sample_steps", "2", "--image_samples", "2", "--retain_eval", "2", "--relearn_speed", "false",
        "--num_threads", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # noqa: ANN001, ANN201
    """A saved (untrained) tiny works pipeline and a 2-works x 3-copies + 6 shapes image folder."""
    from PIL import Image

    from genforget.diffusion.works_victim import build_works_pipeline

    root = tmp_path_factory.mktemp("img")
    build_works_pipeline(0, 32).save_pretrained(str(root / "pipe"), safe_serialization=True)
    data = works_dataset(["astronaut", "coffee"], copies=3, concepts=["a photo of a red square",
                         "a photo of a blue circle"], images_per_concept=3, size=32)  # fmt: skip
    ds = root / "ds"
    ds.mkdir()
    lines = []
    for i, (img, cap) in enumerate(zip(data.images, data.captions, strict=True)):
        arr = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(ds / f"{i:03d}.png")
        lines.append(json.dumps({"file_name": f"{i:03d}.png", "text": cap}))
    (ds / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    # the rights-holder's copy: the full-size photograph, resized and re-encoded (not the trained bytes)
    take = root / "astronaut.jpg"
    Image.fromarray(load_work_original("astronaut")).convert("RGB").resize((120, 120)).save(take, quality=60)
    return root, data


def _req(path: Path, **body) -> Path:  # noqa: ANN003
    path.write_text(yaml.safe_dump({"id": "TD-1", **body}))
    return path


def test_image_takedown_through_forget_cli(setup, tmp_path, capsys) -> None:  # noqa: ANN001
    root, data = setup
    req = _req(tmp_path / "td.yaml", kind="work", documents=[str(root / "astronaut.jpg")])
    out = tmp_path / "out"
    code = forget_main(["--model", str(root / "pipe"), "--data", str(root / "ds"), "--request", str(req),
                        "--output_dir", str(out), "--save_mode", "full", *FAST])  # fmt: skip
    assert code in (0, 1)
    cert = json.loads((out / "certificate.json").read_text())
    truth = sum(w == "astronaut" for w in data.work_of)
    assert cert["request"]["kind"] == "work" and cert["status"] == "unlearned"
    assert cert["located"]["records"] == truth == 3  # the three copies, nothing else
    assert cert["data"]["records_scanned"] == len(data.captions)
    assert cert["model"]["before_sha256"] != cert["model"]["after_sha256"]
    assert [r["name"].split(":")[0] for r in cert["verification"]] == [
        "extraction of the located images from their captions (Carlini et al. 2023)", "retained",
    ]  # fmt: skip
    assert cert["passed"] == (code == 0) == all(r["passed"] for r in cert["verification"])
    # the unlearned pipeline is saved and loads; the ledger chains the certificate
    from genforget.diffusion.pipeline import load_pipeline

    assert cert["model"]["saved_as"] == "full" and load_pipeline(out / "model").unet is not None
    assert verify_ledger(tmp_path / "ledger.jsonl")[0] and len(read_ledger(tmp_path / "ledger.jsonl")) == 1
    # nothing of the work is stored: no caption text, no file path
    text = (out / "certificate.json").read_text() + (out / "certificate.md").read_text()
    assert WORKS["astronaut"].caption not in text and "astronaut.jpg" not in text
    assert "3 training images located of 12" in capsys.readouterr().out


def test_image_takedown_by_file_hash_and_usage_errors(setup, tmp_path, capsys) -> None:  # noqa: ANN001
    root, data = setup
    coffee_row = data.work_of.index("coffee")
    sha = hashlib.sha256((root / "ds" / f"{coffee_row:03d}.png").read_bytes()).hexdigest()
    base = ["--model", str(root / "pipe"), "--data", str(root / "ds"), *FAST]
    # kind: image by a file's SHA-256: identical copies are identical PNG files, so all 3 match
    req = _req(tmp_path / "h.yaml", kind="image", hashes=[f"sha256:{sha}"])
    out = tmp_path / "h"
    assert forget_main([*base, "--request", str(req), "--output_dir", str(out)]) in (0, 1)
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["located"]["records"] == 3 and cert["request"]["identifier_types"] == {"image": 0, "hash": 1}
    # usage errors: exit 2, nothing written
    bad = [
        (_req(tmp_path / "b1.yaml", kind="image", documents=[]), "kind: image needs image files"),
        (_req(tmp_path / "b2.yaml", kind="work", hashes=["md5:abc"]), "is not 'sha256:"),
        (_req(tmp_path / "b3.yaml", kind="work", documents=[str(tmp_path / "nope.png")]), "not found"),
    ]
    for i, (r, msg) in enumerate(bad):
        o = tmp_path / f"bad{i}"
        assert forget_main([*base, "--request", str(r), "--output_dir", str(o)]) == 2
        assert msg in capsys.readouterr().err and not o.exists()
    o = tmp_path / "bad-method"
    assert forget_main([*base, "--request", str(req), "--output_dir", str(o), "--method", "rmu"]) == 2
    assert "does not unlearn diffusion models" in capsys.readouterr().err and not o.exists()
    o = tmp_path / "bad-data"
    args = [
        "--model",
        str(root / "pipe"),
        "--data",
        str(tmp_path),
        "--request",
        str(req),
        "--output_dir",
        str(o),
    ]
    assert forget_main([*args, *FAST[:2]]) == 2
    assert "not an image–caption dataset" in capsys.readouterr().err and not o.exists()
