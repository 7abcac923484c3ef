"""MUSE VerbMem / KnowMem against hand-computed ROUGE-L F1 (a stub model that answers from a
table), and the MUSE-format directory loader on a tiny directory written here."""

from __future__ import annotations

import json

import pytest
import torch

from genforget.data.muse import load_muse, load_muse_dir
from genforget.evaluation.metrics.muse import (
    knowmem,
    muse_metrics,
    rouge_l_f1_scores,
    verbmem,
    verbmem_probes,
)
from genforget.evaluation.metrics.registry import metric_info


class TableLM(torch.nn.Module):
    """Greedy 'generation' from a prompt -> continuation table, via the tokenizer (no weights)."""

    def __init__(self, tokenizer, table: dict[str, str]) -> None:
        super().__init__()
        self.tok, self.table, self.max_new = tokenizer, table, []
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def generate(self, input_ids, attention_mask, max_new_tokens, **_):
        self.max_new.append(max_new_tokens)
        rows = []
        for ids, mask in zip(input_ids, attention_mask, strict=True):
            prompt = self.tok.decode(ids[mask.bool()], skip_special_tokens=True)
            cont = self.tok(self.table[prompt.strip()], add_special_tokens=False)["input_ids"][
                :max_new_tokens
            ]
            rows.append(torch.cat([ids, torch.tensor(cont, dtype=torch.long)]))
        n = max(len(r) for r in rows)
        pad = self.tok.pad_token_id
        return torch.stack([torch.cat([r, torch.full((n - len(r),), pad)]) for r in rows])


def test_rouge_l_f1_by_hand():
    # LCS("the cat sat", "the cat sat on the mat") = 3: P = 1, R = 1/2, F1 = 2/3
    # LCS("a cat", "the dog") = 0
    assert rouge_l_f1_scores(
        ["the cat sat", "a cat"], ["the cat sat on the mat", "the dog"]
    ) == pytest.approx([2 / 3, 0.0])
    with pytest.raises(ValueError, match="references"):
        rouge_l_f1_scores(["x"], [])


def test_verbmem_probes_split_at_k_tokens(tokenizer):
    text = "Alice lives at 1 Main Street and works for Acme in the city."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    (probe,) = verbmem_probes([text, "Bob"], tokenizer, prefix_tokens=4, continuation_tokens=3)
    assert probe == {"prompt": tokenizer.decode(ids[:4]), "target": tokenizer.decode(ids[4:7])}


def test_verbmem_is_mean_rouge_f1_of_greedy_continuations(tokenizer):
    probes = [
        {"prompt": "Alice lives at", "target": "one main street in the city"},  # exact: F1 1
        {"prompt": "Bob works for", "gt": "the city council"},  # MUSE's key name
    ]
    lm = TableLM(
        tokenizer, {"Alice lives at": " one main street in the city", "Bob works for": " the council"}
    )
    # second: LCS("the council", "the city council") = 2, P = 1, R = 2/3, F1 = 0.8
    assert verbmem(lm, tokenizer, probes) == pytest.approx((1.0 + 0.8) / 2)
    assert lm.max_new == [128]


def test_knowmem_answers_first_line_with_icl_prompt(tokenizer):
    icl = [{"question": "Who?", "answer": "Carol"}]
    q = "Question: Who?\nAnswer: Carol\n\nQuestion: Where does Alice live?\nAnswer:"
    lm = TableLM(tokenizer, {q: " in the city\nQuestion: next"})
    qa = [{"question": "Where does Alice live?", "answer": "the city"}]
    # answer "in the city" vs "the city": LCS 2, P = 2/3, R = 1, F1 = 0.8
    assert knowmem(lm, tokenizer, qa, icl=icl) == pytest.approx(0.8)
    assert lm.max_new == [32]


def test_muse_metrics_per_split(tokenizer):
    lm = TableLM(tokenizer, {"Alice lives at": " the city", "Question: Who?\nAnswer:": " Bob"})
    got = muse_metrics(
        lm,
        tokenizer,
        {"forget": [{"prompt": "Alice lives at", "target": "the city hall"}]},  # P 1, R 2/3: F1 0.8
        {"retain": [{"question": "Who?", "answer": "Bob"}]},
    )
    assert got == pytest.approx({"forget_verbmem": 0.8, "retain_knowmem": 1.0})
    assert all(metric_info(k) for k in got)


def test_muse_metrics_are_registered_with_directions():
    assert metric_info("forget_verbmem").higher_is_better is False
    assert metric_info("retain_knowmem").higher_is_better is True


def test_load_muse_dir(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "forget.json").write_text(json.dumps(["text one", {"text": "text two"}]))
    (tmp_path / "raw" / "holdout.txt").write_text("a whole book")
    (tmp_path / "verbmem").mkdir()
    (tmp_path / "verbmem" / "forget.json").write_text(json.dumps([{"prompt": "p", "gt": "g"}]))
    (tmp_path / "knowmem").mkdir()
    (tmp_path / "knowmem" / "forget_qa.jsonl").write_text('{"question": "q", "answer": "a"}\n\n')
    (tmp_path / "privleak").mkdir()
    (tmp_path / "privleak" / "holdout.json").write_text(json.dumps(["h"]))
    (tmp_path / "privleak" / "notes.md").write_text("ignored")
    data = load_muse(tmp_path)
    assert data.raw == {
        "forget": [{"text": "text one"}, {"text": "text two"}],
        "holdout": [{"text": "a whole book"}],
    }
    assert data.verbmem == {"forget": [{"prompt": "p", "target": "g"}]}
    assert data.knowmem == {"forget_qa": [{"question": "q", "answer": "a"}]}
    assert data.privleak == {"holdout": [{"text": "h"}]}


def test_load_muse_dir_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no MUSE subset"):
        load_muse_dir(tmp_path)
    (tmp_path / "knowmem").mkdir()
    (tmp_path / "knowmem" / "forget_qa.json").write_text(json.dumps([{"question": "q"}]))
    with pytest.raises(ValueError, match=r"forget_qa.json\[0\].*'answer'"):
        load_muse_dir(tmp_path)
    (tmp_path / "knowmem" / "forget_qa.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_muse_dir(tmp_path)
