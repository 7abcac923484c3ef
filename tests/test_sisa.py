"""SISA over LoRA shards: deletion is bit-exact, the manifest holds hashes only, and the shard
mixture is the average of the shards' next-token distributions."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

import genforget
from genforget import sisa
from genforget.sisa.shards import assign, id_hash

pytestmark = pytest.mark.usefixtures("one_thread")  # 2 threads on 2 shared cores: 5x slower

FIELDS = {"epochs": 2, "lora_r": 4, "batch_size": 4, "learning_rate": 1e-2}
FEW_STEPS = {**FIELDS, "epochs": 1, "batch_size": 8}  # exactness needs steps, not a good model


def _records(corpus) -> list[dict]:
    return sisa.corpus_records(corpus, ("forget", "retain"))


def _adapters(root, n: int) -> list[dict[str, torch.Tensor]]:
    return [load_file(root / f"shard-{k}" / "adapter_model.safetensors") for k in range(n)]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _pick(ens, shard_slice: list[tuple[int, int]], records) -> list[str]:
    """One record id at each wanted (shard, slice)."""
    out = []
    for want in shard_slice:
        out.append(next(r["id"] for r in records if ens.manifest.entries[id_hash(r["id"])] == want))
    return out


def test_delete_is_bit_exact_retrain_of_touched_shards_only(corpus, tiny_lm, tokenizer, tmp_path):
    records = _records(corpus)
    base = copy.deepcopy(tiny_lm)
    ens = sisa.train(copy.deepcopy(base), tokenizer, records, 3, 2, tmp_path / "a", **FEW_STEPS)
    before = _adapters(tmp_path / "a", 3)
    # Shard 0 loses a slice-1 record (resume from ckpt-1), shard 1 a slice-0 one (from ckpt-0).
    gone = _pick(ens, [(0, 1), (1, 0)], records)
    ens.model()  # adapters loaded for inference before the deletion must be refreshed by it
    stats = ens.delete(gone)
    assert stats["shards_touched"] == [0, 1] and stats["records"] == 2 and stats["exact"]
    assert 0 < stats["steps"] < stats["full_retrain_steps"]
    after = _adapters(tmp_path / "a", 3)

    rest = [r for r in records if r["id"] not in gone]
    sisa.train(copy.deepcopy(base), tokenizer, rest, 3, 2, tmp_path / "b", **FEW_STEPS)
    fresh = _adapters(tmp_path / "b", 3)
    for k in range(3):
        assert _same(after[k], fresh[k]), f"shard {k} is not the from-scratch retrain bit for bit"
    assert _same(after[2], before[2]), "an untouched shard changed"
    assert not _same(after[0], before[0]) and not _same(after[1], before[1]), "deletion changed nothing"
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert len(manifest) == len(records) - 2
    assert not {id_hash(i) for i in gone} & set(manifest)
    for k in range(3):  # the deleted records' tokens left the data store as well
        assert not {id_hash(i) for i in gone} & set(torch.load(tmp_path / "a" / "data" / f"shard-{k}.pt"))

    # Reload from disk (base re-read from the saved copy) and delete again: still exact.
    again = sisa.load(tmp_path / "a")
    ids = tokenizer(["Alice works for Acme."], return_tensors="pt")["input_ids"]
    assert torch.equal(ens.model()(ids).logits, again.model()(ids).logits), "in-memory shards not refreshed"
    more = _pick(again, [(2, 1)], rest)
    assert again.delete(more)["shards_touched"] == [2]
    rest2 = [r for r in rest if r["id"] not in more]
    sisa.train(copy.deepcopy(base), tokenizer, rest2, 3, 2, tmp_path / "c", **FEW_STEPS)
    for k, (x, y) in enumerate(zip(_adapters(tmp_path / "a", 3), _adapters(tmp_path / "c", 3), strict=True)):
        assert _same(x, y), f"shard {k} differs from the retrain after a reload + delete"


def test_manifest_and_metadata_hold_hashes_never_ids_or_text(corpus, tiny_lm, tokenizer, tmp_path):
    records = _records(corpus)[:8]
    ens = sisa.train(tiny_lm, tokenizer, records, 2, 1, tmp_path, **FIELDS)
    stored = (tmp_path / "manifest.json").read_text() + (tmp_path / "sisa.json").read_text()
    for r in records:
        assert r["id"] not in stored and (r.get("text") or r["texts"][0])[:20] not in stored
        assert ens.manifest.entries[id_hash(r["id"])] == assign(id_hash(r["id"]), 2, 1)
    with pytest.raises(KeyError, match="1 of 1 record ids"):
        ens.delete(["never-trained"])
    with pytest.raises(FileExistsError):
        sisa.train(tiny_lm, tokenizer, records, 2, 1, tmp_path, **FIELDS)
    with pytest.raises(ValueError, match="unique 'id'"):
        sisa.train(tiny_lm, tokenizer, records + records[:1], 2, 1, tmp_path / "x", **FIELDS)


def test_mixture_is_the_average_of_shard_distributions(corpus, tiny_lm, tokenizer, tmp_path):
    from peft import PeftModel

    base = copy.deepcopy(tiny_lm)
    ens = sisa.train(copy.deepcopy(base), tokenizer, _records(corpus), 2, 1, tmp_path, **FIELDS)
    mix = ens.model("mixture")
    batch = tokenizer(["Alice works for Acme.", "Bob lives at"], return_tensors="pt", padding=True)
    got = mix(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    probs = []
    for k in range(2):
        single = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / f"shard-{k}").eval()
        with torch.no_grad():
            probs.append(torch.softmax(single(**batch).logits, -1))
    valid = batch["attention_mask"].bool()  # padded positions get other position ids: not compared
    torch.testing.assert_close(got.exp()[valid], ((probs[0] + probs[1]) / 2)[valid], rtol=1e-5, atol=1e-6)
    assert (probs[0].log() - probs[1].log()).abs().max() > 1e-2, "shards should differ"

    # Merged: one adapter whose weight delta is the average of the shards' deltas.
    merged = ens.model("merged")
    layer = next(
        m for m in ens.peft_model.modules() if hasattr(m, "get_delta_weight") and "merged" in m.lora_A
    )
    want = (layer.get_delta_weight("shard-0") + layer.get_delta_weight("shard-1")) / 2
    torch.testing.assert_close(layer.get_delta_weight("merged"), want, rtol=1e-5, atol=1e-7)
    assert merged(**batch).logits.shape == got.shape


def test_single_shard_generation_matches_transformers_generate(corpus, tiny_lm, tokenizer, tmp_path):
    from peft import PeftModel

    from genforget.evaluation.metrics.extraction import generate

    base = copy.deepcopy(tiny_lm)
    ens = sisa.train(copy.deepcopy(base), tokenizer, _records(corpus), 1, 1, tmp_path, **FIELDS)
    single = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "shard-0").eval()
    prompts = [p["prompt"] for p in corpus.pii_probes("forget")[:6]]  # different lengths: left padding
    assert generate(ens.model(), tokenizer, prompts, 8) == generate(single, tokenizer, prompts, 8)
    forget = corpus.full_text_examples("forget")
    ours = genforget.evaluate(ens.model(), tokenizer, forget, holdout=corpus.full_text_examples("holdout"))
    theirs = genforget.evaluate(single, tokenizer, forget, holdout=corpus.full_text_examples("holdout"))
    assert ours["forget_perplexity"] == pytest.approx(theirs["forget_perplexity"], rel=1e-5)
    assert ours["mia_loss_auc"] == pytest.approx(theirs["mia_loss_auc"])


CORPUS_ARGS = ["--n_people", "20", "--n_passages", "10", "--forget_frac", "0.2"]


def test_recipe_trains_then_deletes_and_logs_hashes_only(corpus, tiny_lm, tokenizer, tmp_path, capsys):
    from genforget.cli.sisa import main

    base = tmp_path / "base"
    tiny_lm.save_pretrained(base)
    tokenizer.save_pretrained(base)
    out = tmp_path / "ens"
    train = ["--model_name_or_path", str(base), "--output_dir", str(out), *CORPUS_ARGS]
    assert main([*train, "--n_shards", "2", "--epochs", "1", "--lora_r", "4"]) == 0
    assert main(["--mode", "delete", "--output_dir", str(out), "--delete", "pii:forget", *CORPUS_ARGS]) == 0
    (entry,) = [json.loads(line) for line in (out / "deletions.jsonl").read_text().splitlines()]
    forget_ids = [r["id"] for r in sisa.corpus_records(corpus, ("forget",))]
    assert entry["exact"] and entry["records"] == len(forget_ids) == 6
    assert sorted(entry["id_sha256"]) == sorted(id_hash(i) for i in forget_ids)
    assert len(json.loads((out / "manifest.json").read_text())) == len(sisa.corpus_records(corpus)) - 6
    logged = capsys.readouterr().out + "".join(
        (out / f).read_text() for f in ("manifest.json", "sisa.json", "deletions.jsonl")
    )
    assert not [v for v in corpus.pii_values("forget") + forget_ids if v in logged]
    # A second delete of the same people is a usage error (exit 2), and so is a bad mode.
    assert main(["--mode", "delete", "--output_dir", str(out), "--delete", "pii:forget", *CORPUS_ARGS]) == 2
    assert "not in the ensemble" in capsys.readouterr().err
    assert main(["--mode", "forget", "--output_dir", str(out)]) == 2
    assert "mode must be train or delete" in capsys.readouterr().err
    assert main([*train]) == 2  # output_dir not empty
    assert main(["--output_dir", str(tmp_path / "new"), "--n_shardz", "2"]) == 2
    assert "Did you mean 'n_shards'" in capsys.readouterr().err and not (tmp_path / "new").exists()
