"""Model cards: YAML metadata the Hub reads, what was done, and nothing forgotten in clear text."""

from __future__ import annotations

import hashlib

from huggingface_hub import ModelCard

from genforget.cards import sha256_text, write_model_card


def _card(tmp_path, base):
    secret = "a photo of my neighbour's house"
    write_model_card(
        tmp_path, title="t", base_model=base, library_name="diffusers", tags=["lora"], summary="s",
        method="esd", config={"learning_rate": 0.001, "use_lora": True},
        forgotten={"concept (SHA-256)": sha256_text(secret)}, results={"erased": 0.03}, usage="pipe = 1",
    )  # fmt: skip
    return secret, ModelCard.load(tmp_path / "README.md")


def test_card_has_hub_metadata_and_only_the_hash_of_what_was_forgotten(tmp_path):
    secret, card = _card(tmp_path, "org/base-model")
    assert card.data.base_model == "org/base-model" and card.data.library_name == "diffusers"
    assert {"genforget", "machine-unlearning", "lora"} <= set(card.data.tags)
    text = (tmp_path / "README.md").read_text()
    assert secret not in text and hashlib.sha256(secret.encode()).hexdigest() in text
    assert "learning_rate: 0.001" in text and '"erased": 0.03' in text


def test_a_local_base_is_not_written_as_a_hub_repo_id(tmp_path):
    base = tmp_path / "my-pipeline"
    base.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    _, card = _card(out, str(base))
    assert card.data.base_model is None  # the Hub would reject a local path as base_model
    assert "local model (`my-pipeline`)" in (out / "README.md").read_text()
    assert str(tmp_path) not in (out / "README.md").read_text()  # no local paths leak into a card
