"""Memorise -> forget -> verify on the 20-person corpus, through the public API."""

from __future__ import annotations

import pytest
from conftest import unlearn_corpus
from peft import PeftModel

import genforget
from genforget.evaluation.split import EvalSplit, corpus_split


@pytest.fixture(scope="module")
def splits(corpus):
    return {s: corpus_split(corpus, s) for s in ("forget", "retain", "holdout")}


@pytest.fixture(scope="module")
def victim_metrics(victim_dir, splits):
    model, tok = genforget.load_model(victim_dir)
    return genforget.evaluate(model, tok, splits["forget"], splits["retain"], splits["holdout"])


def test_victim_memorised(victim_metrics):
    assert victim_metrics["forget_pii_extraction"] >= 0.9
    assert victim_metrics["forget_verbatim_extraction"] == 1.0
    assert victim_metrics["retain_pii_extraction"] >= 0.9
    assert victim_metrics["mia_min_k_auc"] >= 0.9


def test_npo_forgets_and_retain_holds(victim, corpus, splits, victim_metrics):
    model, tok = victim
    out = unlearn_corpus(model, tok, corpus, method="npo", learning_rate=1e-3, max_steps=40)
    m = genforget.evaluate(out, tok, splits["forget"], splits["retain"], splits["holdout"])
    assert m["forget_pii_extraction"] <= 0.1
    assert m["forget_verbatim_extraction"] == 0.0
    assert m["retain_pii_extraction"] >= 0.9 * victim_metrics["retain_pii_extraction"]
    assert m["retain_perplexity"] <= 1.5 * victim_metrics["retain_perplexity"]
    assert set(
        k.removeprefix("forget_pii_extraction_") for k in m if k.startswith("forget_pii_extraction_")
    ) == set(genforget.data.PII_FIELDS)


def test_lora_unlearning_saves_a_loadable_adapter(
    victim, corpus, splits, victim_metrics, victim_dir, tmp_path
):
    from genforget.adapters import save_model

    model, tok = victim
    out = unlearn_corpus(model, tok, corpus, method="npo", learning_rate=5e-3, max_steps=30, use_lora=True)
    assert isinstance(out, PeftModel)
    m = genforget.evaluate(out, tok, splits["forget"], splits["retain"], splits["holdout"])
    assert m["forget_pii_extraction"] < 0.5 * victim_metrics["forget_pii_extraction"]
    assert save_model(out, tok, tmp_path / "adapter") == "adapter"
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    reloaded = PeftModel.from_pretrained(genforget.load_model(victim_dir)[0], tmp_path / "adapter")
    m2 = genforget.evaluate(reloaded, tok, splits["forget"])
    assert m2["forget_pii_extraction"] == pytest.approx(m["forget_pii_extraction"])
    via_api, _ = genforget.load_model(tmp_path / "adapter", base_model=str(victim_dir))
    assert isinstance(via_api, PeftModel)


def test_evaluate_accepts_plain_examples(victim):
    model, tok = victim
    split = EvalSplit.from_examples(
        [{"prompt": "a", "value": "b", "field": "x"}, {"prompt": "c", "target": " d"}, {"text": "e f"}]
    )
    assert len(split.pii_probes) == 1 and len(split.verbatim_probes) == 1 and len(split.texts) == 2
    m = genforget.evaluate(model, tok, split)
    expected = {
        "forget_pii_extraction",
        "forget_pii_extraction_x",
        "forget_verbatim_extraction",
        "forget_perplexity",
        "forget_rouge_l_recall",
        "forget_exact_memorisation",
        "degeneration_rate",
    }
    assert expected <= set(m)
    assert not any(k.startswith(("retain_", "mia_")) for k in m)  # no data, no metric


def test_calibrated_stop_ends_when_forget_looks_unseen(victim, corpus, splits, capsys):
    model, tok = victim
    res = unlearn_corpus(
        model,
        tok,
        corpus,
        calibrated=True,
        method="npo",
        beta=0.02,
        learning_rate=1e-3,
        max_steps=300,
        return_history=True,
    )
    out = res.model
    msg = capsys.readouterr().out
    assert "calibrated stop after" in msg
    steps = int(msg.split("calibrated stop after ")[1].split()[0])
    assert 0 < steps < 300 and res.stopped_at == steps
    # history: one row per trained step, the calibration trace on the check steps
    trained = [r for r in res.history if not r.get("stopped")]
    assert [r["step"] for r in trained] == list(range(steps))
    assert all(r["tokens"] > 0 and r["seconds"] > 0 and isinstance(r["loss"], float) for r in trained)
    checks = [r for r in res.history if "calibration_unseen" in r]
    assert checks[-1]["calibration_forget"] >= checks[-1]["calibration_unseen"]
    assert all(c["calibration_forget"] < c["calibration_unseen"] for c in checks[:-1])
    m = genforget.evaluate(out, tok, splits["forget"], splits["retain"], splits["holdout"])
    assert m["forget_pii_extraction"] <= 0.1
    assert abs(m["mia_min_k_auc"] - 0.5) < 0.3  # no longer perfectly member-like (victim: 1.0)
