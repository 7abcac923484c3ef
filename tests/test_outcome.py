"""Every run ends with an outcome: its figures are right, its status follows the rules, and a run
that did not forget says so: a warning from the API, exit code 3 from the CLI."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from conftest import unlearn_corpus
from test_recipes import CORPUS_ARGS

import genforget
from genforget.cli.main import main
from genforget.lm.data import Collator, tokenize_all, tokenize_example
from genforget.lm.outcome import EXIT_NOT_FORGOTTEN, Figures, decide, measure


def _greedy_writes_target(model, tok, probe: dict) -> bool:
    feat = tokenize_example(probe, tok, 256)
    n = sum(lab != -100 for lab in feat["labels"])
    prompt = torch.tensor([feat["input_ids"][:-n]])
    out = model.generate(
        input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, do_sample=False,
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    return out[0, prompt.shape[1] :].tolist() == feat["input_ids"][-n:]


def test_teacher_forced_extraction_is_greedy_decoding(victim, corpus):
    model, tok = victim
    with torch.no_grad():  # damage the victim so that some values are still extracted and some not
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    probes = [{"prompt": p["prompt"], "target": " " + p["value"]} for p in corpus.pii_probes("retain")][:40]
    greedy = [_greedy_writes_target(model, tok, p) for p in probes]
    collate = Collator(tok.pad_token_id)
    each = [measure(model, tokenize_all([p], tok, 256), collate).extraction for p in probes]
    assert 0 < sum(greedy) < len(greedy)  # a mix, so agreement is not trivial
    assert each == [float(x) for x in greedy]
    together = measure(model, tokenize_all(probes, tok, 256), collate)
    assert together.extraction == pytest.approx(sum(greedy) / len(greedy))
    assert together.spans == len(probes) and 0 < together.accuracy <= 1 and together.nll > 0


F = Figures


@pytest.mark.parametrize(
    "fb, fa, rb, ra, status, says",
    [
        (F(1.0, 0.01, 1.0, 8), F(0.0, 5.0, 0.2, 8), F(1.0, 0.01, 1.0, 30), F(0.95, 0.05, 0.98, 30), "forgotten", ""),
        (F(1.0, 0.01, 1.0, 8), F(0.25, 1.6, 0.9, 8), None, None, "partial", "still extractable (0.25"),
        (F(1.0, 0.01, 1.0, 8), F(0.0, 5.0, 0.2, 8), F(1.0, 0.01, 1.0, 30), F(0.8, 0.3, 0.9, 30), "partial",
         "retain extraction fell by 0.20"),
        (F(1.0, 0.01, 1.0, 8), F(1.0, 0.03, 1.0, 8), None, None, "unchanged", "did not move"),
        # Whole-text retain sets: nothing extractable whole, token accuracy carries the figure.
        (F(1.0, 0.01, 1.0, 8), F(0.0, 5.0, 0.2, 8), F(0.0, 1.2, 0.71, 30), F(0.0, 1.3, 0.69, 30), "forgotten",
         "retain token accuracy 0.71 -> 0.69 (retain spans not extractable whole before: 0.00)"),
        # Nothing was extractable before: forgotten only if the forget NLL rose.
        (F(0.0, 5.0, 0.1, 8), F(0.0, 5.2, 0.1, 8), None, None, "forgotten", "barely extractable before"),
        (F(0.0, 5.0, 0.1, 8), F(0.0, 5.01, 0.1, 8), None, None, "unchanged", "did not move"),
    ],
)  # fmt: skip
def test_status_rules(fb, fa, rb, ra, status, says):
    out = decide(fb, fa, rb, ra, ["ran all 60 steps"])
    assert out.status == status
    assert says in out.reason and out.reason.endswith("ran all 60 steps")
    assert type(out).from_dict(json.loads(json.dumps(out.to_dict()))) == out


def test_api_warns_and_reports_a_run_that_did_not_forget(victim, corpus):
    model, tok = victim
    args = (tok, corpus.unlearn_examples("forget"), corpus.full_text_examples("retain"))
    kw = dict(method="npo", learning_rate=1e-7, max_steps=2, calibration=False)
    with pytest.warns(genforget.OutcomeWarning, match="unchanged: forget figures did not move"):
        res = genforget.unlearn(copy.deepcopy(model), *args, return_history=True, **kw)
    assert res.outcome.status == "unchanged"
    assert res.outcome.forget_before.extraction > 0.5  # the victim knew them ...
    assert res.outcome.forget_after.extraction == pytest.approx(res.outcome.forget_before.extraction)
    assert "ran all 2 steps" in res.outcome.reason
    with pytest.warns(genforget.OutcomeWarning):  # also when only the model is returned
        genforget.unlearn(copy.deepcopy(model), *args, **kw)


def test_api_run_that_forgets_says_forgotten_without_a_warning(victim, corpus):
    model, tok = victim
    with warnings.catch_warnings():
        warnings.simplefilter("error", genforget.OutcomeWarning)
        res = unlearn_corpus(
            model, tok, corpus, method="npo", learning_rate=1e-3, max_steps=40, return_history=True
        )
    o = res.outcome
    assert o.status == "forgotten", o.reason
    assert o.forget_before.extraction >= 0.5 and o.forget_after.extraction <= 0.1
    assert o.retain_measured_on == "retain" and o.retain_after.accuracy >= o.retain_before.accuracy - 0.1


def test_cli_exits_3_when_not_forgotten_unless_allowed(victim_dir, tmp_path, capsys):
    argv = ["unlearn", "--model_name_or_path", str(victim_dir), "--forget_data", "pii:forget"]
    argv += ["--retain_data", "pii:retain", "--max_steps", "2", "--learning_rate", "1e-7", *CORPUS_ARGS]
    assert main([*argv, "--output_dir", str(tmp_path / "a")]) == EXIT_NOT_FORGOTTEN == 3
    err = capsys.readouterr().err
    assert err.count("error: the unlearning outcome is unchanged") == 1 and "--allow_partial true" in err
    record = json.loads((tmp_path / "a" / "genforget_run.json").read_text())  # saved all the same
    assert record["outcome"]["status"] == "unchanged" and record["outcome"]["forget_before"]["spans"] > 0
    assert main([*argv, "--output_dir", str(tmp_path / "b"), "--allow_partial", "true"]) == 0
