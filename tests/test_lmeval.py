"""lm-evaluation-harness tasks on the in-memory model, next to genforget's metrics in the harness
report. Offline: a multiple-choice task YAML of our own over a JSONL written here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import genforget
from genforget.evaluation.harness import load_suite, run_suite
from genforget.evaluation.lmeval import run_lm_eval, task_manager
from genforget.evaluation.report import write_report
from genforget.evaluation.suite import Suite
from genforget.lm.victim import VictimConfig, build_model

pytest.importorskip("lm_eval")  # the Makefile installs genforget[lmeval]: `make test` never skips this

TASK = "genforget_people_mc"
ROWS = [
    {"question": "Alice Moreau lives in", "choices": ["Paris", "London", "Madrid"], "label": 0},
    {"question": "The email of Bruno Silva is", "choices": ["bruno@mail.com", "ana@mail.com"], "label": 0},
    {"question": "Carla Nunes was born in", "choices": ["1990", "1985", "2001"], "label": 2},
    {"question": "David Okafor works as a", "choices": ["teacher", "doctor"], "label": 1},
    {"question": "The phone number of Eva Lind is", "choices": ["555 0101", "555 0199"], "label": 1},
    {"question": "Farid Haddad studied at", "choices": ["Oxford", "Cairo", "Lisbon"], "label": 1},
    {"question": "Greta Olsen drives a", "choices": ["bicycle", "truck", "car"], "label": 0},
    {"question": "Hugo Petit plays the", "choices": ["piano", "violin"], "label": 0},
]


def write_task(root: Path) -> Path:
    """A task dir: the JSONL and an lm-eval multiple_choice YAML that reads it (``json`` builder,
    local file: no hub)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "people.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "people.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        f"  data_files: {{test: {root / 'people.jsonl'}}}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{label}}"\n'
        "metric_list:\n"
        "  - metric: acc\n"
        "    aggregation: mean\n"
        "    higher_is_better: true\n"
    )
    return root


@torch.no_grad()
def hand_accuracy(model, tok) -> float:
    """Accuracy by hand: each choice scored by the summed log-probability of its tokens after
    the question (lm-eval's multiple_choice: context = question, continuation = " " + choice,
    split on the tokens of the question), the argmax compared with the label."""
    model.eval()
    right = 0
    for r in ROWS:
        scores = []
        for c in r["choices"]:
            ctx = tok(r["question"])["input_ids"]
            whole = tok(r["question"] + " " + c)["input_ids"]
            assert whole[: len(ctx)] == ctx
            logp = model(torch.tensor([whole])).logits[0].log_softmax(-1)
            scores.append(sum(logp[i - 1, whole[i]].item() for i in range(len(ctx), len(whole))))
        right += max(range(len(scores)), key=scores.__getitem__) == r["label"]
    return right / len(ROWS)


def tiny(tokenizer, seed: int):
    return build_model(
        VictimConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, seed=seed), tokenizer
    )


def test_evaluate_runs_an_lm_eval_task_on_the_model_in_memory(tokenizer, tmp_path):
    tasks = write_task(tmp_path / "tasks")
    model = tiny(tokenizer, 0)
    model.train()
    out, details = genforget.evaluate(
        model,
        tokenizer,
        [{"text": "Alice Moreau lives in Paris."}],
        lm_eval_tasks=[TASK],
        lm_eval_include=str(tasks),
        return_details=True,
    )
    assert model.training  # train mode given back
    key = f"lm_eval/{TASK}/acc"
    assert out[key] == pytest.approx(hand_accuracy(model, tokenizer))
    assert "forget_perplexity" in out  # genforget's own metrics still there, side by side
    info = details["lm_eval"]
    assert info["n_samples"][TASK] == len(ROWS)
    assert info["higher_is_better"][key] is True
    assert 0 < info["stderr"][key] < 1  # closed-form standard error of the mean accuracy
    assert info["lm_eval_version"]
    # lm_eval_limit: only the first documents are scored; one task name as a plain string
    few, d2 = genforget.evaluate(
        model,
        tokenizer,
        [],
        lm_eval_tasks=TASK,
        lm_eval_include=str(tasks),
        lm_eval_limit=2,
        return_details=True,
    )
    assert d2["lm_eval"]["n_samples"][TASK] == 2
    assert 0.0 <= few[key] <= 1.0


def test_harness_report_puts_lm_eval_next_to_victim_unlearned_oracle(tokenizer, tmp_path):
    write_task(tmp_path / "suites" / "tasks")
    suite_file = tmp_path / "suites" / "s.yaml"
    suite_file.write_text(
        "name: capability\ndata: none\naudits: []\nany_k: 0\n"
        f"lm_eval_tasks: [{TASK}]\nlm_eval_include: [tasks]\n"  # relative: the suite file's folder
    )
    suite = load_suite(str(suite_file))
    assert suite.lm_eval_include == [str(tmp_path / "suites" / "tasks")]
    models = {n: (tiny(tokenizer, s), tokenizer) for n, s in (("victim", 1), ("unlearned", 2), ("oracle", 3))}
    hand = {n: hand_accuracy(m, tokenizer) for n, (m, _) in models.items()}
    assert len(set(hand.values())) > 1  # the models differ: a report of one model thrice would fail
    report = run_suite(models, suite, method="npo", progress=False)
    key = f"lm_eval/{TASK}/acc"
    for name, acc in hand.items():
        assert report["models"][name][key] == pytest.approx(acc)
    assert report["details"]["metric_info"][key]["higher_is_better"] is True
    paths = write_report(report, tmp_path / "report")
    md = paths["md"].read_text()
    assert "## Standard tasks (lm-evaluation-harness)" in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {TASK}/acc |"))
    assert [c.split("±")[0].strip() for c in row.strip("|").split("|")[1:]] == [
        f"{hand[n]:.3f}" for n in ("victim", "unlearned", "oracle")
    ]
    written = paths["json"].read_text() + md
    assert not any(r["question"] in written for r in ROWS)  # numbers only: no task documents


def test_lm_eval_bad_inputs_say_what_to_do(tmp_path, monkeypatch, tokenizer):
    with pytest.raises(FileNotFoundError, match="lm_eval_include"):
        task_manager(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="lm_eval_limit"):
        Suite(data="none", lm_eval_tasks=["mmlu"], lm_eval_limit=-1)
    with pytest.raises(ValueError, match="lm_eval_tasks"):
        Suite(lm_eval_tasks=[3])
    assert Suite(data="none", lm_eval_tasks="mmlu").lm_eval_tasks == ["mmlu"]  # --set lm_eval_tasks=mmlu
    with pytest.raises(ValueError, match=r"bias_pairs only \(or lm_eval_tasks\)"):
        Suite(data="none")
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(ImportError, match=r"genforget\[lmeval\]"):
        run_lm_eval(tiny(tokenizer, 0), tokenizer, [TASK])


@pytest.mark.slow  # indexes lm-eval's whole task registry (~15k YAMLs): 12-25 s on 2 cores
def test_unknown_lm_eval_task_names_near_ones(tmp_path, tokenizer):
    tasks = write_task(tmp_path / "tasks")
    with pytest.raises(ValueError, match=f"did you mean {TASK}"):
        run_lm_eval(tiny(tokenizer, 0), tokenizer, [TASK + "s"], tasks)


def test_eval_cache_key_follows_the_task_files(tmp_path):
    from genforget.eval_cache import score_key

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    tasks = write_task(tmp_path / "tasks")
    suite = Suite(data="none", lm_eval_tasks=[TASK], lm_eval_include=[str(tasks)])
    before = score_key(model, suite, "fp", {})
    assert score_key(model, suite, "fp", {}) == before
    (tasks / "people.jsonl").write_text(json.dumps(ROWS[0]) + "\n")  # same names, other documents
    assert score_key(model, suite, "fp", {}) != before
