"""``datasets`` in, everywhere: a Dataset, a DatasetDict split, a dataset dir, a parquet file and a
hub id ``name:split`` read as the same examples by the API, the CLI and the recipes. Offline: the
hub id is tested up to the ``datasets.load_dataset`` call (monkeypatched)."""

from __future__ import annotations

import json

import datasets
import pytest
import torch

import genforget
from genforget.data.loaders import as_examples, fingerprint, load_data_spec

CHAT = [{"role": "user", "content": "Where does Ana live?"}, {"role": "assistant", "content": "In Porto."}]
ROWS = [
    {"text": "Ana Lima lives at 12 Rua Nova, Porto."},
    {"prompt": "The phone number of Rui Costa is", "target": " 555 0142"},
    {"question": "Where was Ines born?", "answer": "In Braga."},
    {"messages": CHAT},
]
COLUMNS = ("text", "prompt", "target", "question", "answer", "messages")


def as_dataset(rows: list[dict]) -> datasets.Dataset:
    """Rows of several shapes in one table, as the Hub holds them: a column a row lacks is None."""
    return datasets.Dataset.from_dict(
        {c: [r.get(c) for r in rows] for c in COLUMNS if any(c in r for r in rows)}
    )


def test_every_form_reads_the_same_examples(tmp_path, monkeypatch):
    ds = as_dataset(ROWS)
    dd = datasets.DatasetDict({"forget": ds, "retain": as_dataset(ROWS[:1])})
    ds.save_to_disk(str(tmp_path / "ds"))
    dd.save_to_disk(str(tmp_path / "dd"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "one_split"))
    as_dataset(ROWS[:3]).to_parquet(str(tmp_path / "rows.parquet"))
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    calls = []

    def hub(name, config=None, split=None):
        calls.append((name, config, split))
        return ds

    monkeypatch.setattr(datasets, "load_dataset", hub)
    forms = {
        "list": ROWS,
        "Dataset": ds,
        "DatasetDict split": dd["forget"],
        "save_to_disk Dataset dir": str(tmp_path / "ds"),
        "DatasetDict dir:split": f"{tmp_path / 'dd'}:forget",
        "DatasetDict dir, one split": tmp_path / "one_split",
        "JSONL": str(tmp_path / "rows.jsonl"),
        "hub name:split": "someone/people:forget",
        "hub name:config:split": "someone/people:v2:train[:4]",
    }
    for form, data in forms.items():
        assert as_examples(data, "forget") == ROWS, form  # None columns dropped: the rows as written
    assert calls == [("someone/people", None, "forget"), ("someone/people", "v2", "train[:4]")]
    monkeypatch.undo()  # the parquet builder is datasets' own, offline
    assert load_data_spec(str(tmp_path / "rows.parquet")) == ROWS[:3]
    assert as_examples(f"{tmp_path / 'dd'}:retain") == ROWS[:1]


def test_bad_dataset_inputs_name_the_field_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"columns \['body', 'title'\].*rename_column\('body', 'text'\)"):
        as_examples(datasets.Dataset.from_dict({"title": ["a"], "body": ["b"]}), "forget")
    dd = datasets.DatasetDict({"forget": as_dataset(ROWS), "retain": as_dataset(ROWS[:1])})
    with pytest.raises(
        ValueError, match=r"forget: a DatasetDict holds several splits \(forget, retain\).*dd\['forget'\]"
    ):
        as_examples(dd, "forget")
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"splits forget, retain; name one: .*dd:forget"):
        as_examples(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match="no split 'test'"):
        as_examples(f"{tmp_path / 'dd'}:test")
    with pytest.raises(ValueError, match="row 0: 'text' must be a string"):
        as_examples(datasets.Dataset.from_dict({"text": [3]}), "forget")

    def offline(*a, **k):
        raise ConnectionError("hub unreachable")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        FileNotFoundError,
        match="retain: 'org/x:train' read as hub dataset 'org/x', split 'train'.*unreachable",
    ):
        as_examples("org/x:train", "retain")
    with pytest.raises(FileNotFoundError, match="data file not found: .*nope.jsonl.*; give a JSONL"):
        as_examples(str(tmp_path / "nope.jsonl"))


def test_unlearn_and_evaluate_take_a_dataset_as_they_take_a_list(tiny_lm, tokenizer, tmp_path):
    rows = ROWS[:3]  # no chat: the test tokenizer has no chat template
    as_dataset(rows).save_to_disk(str(tmp_path / "forget"))
    runs = {}
    for form, data in {"list": rows, "Dataset": as_dataset(rows), "dir": str(tmp_path / "forget")}.items():
        model = type(tiny_lm)(tiny_lm.config)
        model.load_state_dict(tiny_lm.state_dict())
        torch.manual_seed(0)
        out = genforget.unlearn(
            model, tokenizer, data, retain=rows[:1], method="grad_ascent", plain=True, max_steps=2
        )
        runs[form] = torch.cat([p.detach().flatten() for p in out.parameters()])
    start = torch.cat([p.detach().flatten() for p in tiny_lm.parameters()])
    assert not torch.equal(runs["list"], start)  # the data was trained on
    assert torch.equal(runs["Dataset"], runs["list"]) and torch.equal(runs["dir"], runs["list"])
    want = genforget.evaluate(tiny_lm, tokenizer, rows, holdout=rows[:1])
    assert genforget.evaluate(tiny_lm, tokenizer, as_dataset(rows), holdout=str(tmp_path / "forget")) != want
    assert genforget.evaluate(tiny_lm, tokenizer, as_dataset(rows), holdout=as_dataset(rows[:1])) == want


def test_cli_reads_dataset_dirs_and_files(victim_dir, corpus, tmp_path, capsys):
    from genforget.cli import unlearn_main

    forget = corpus.unlearn_examples("forget")
    datasets.DatasetDict({"forget": datasets.Dataset.from_list(forget)}).save_to_disk(str(tmp_path / "dd"))
    datasets.Dataset.from_list(corpus.full_text_examples("retain")).to_parquet(
        str(tmp_path / "retain.parquet")
    )
    out = tmp_path / "run"
    args = ["--model_name_or_path", str(victim_dir), "--output_dir", str(out), "--max_steps", "2"]
    args += ["--forget_data", f"{tmp_path / 'dd'}:forget", "--retain_data", str(tmp_path / "retain.parquet")]
    assert unlearn_main([*args, "--allow_partial", "true"]) == 0
    record = json.loads((out / "genforget_run.json").read_text())
    assert record["forget_examples"] == len(forget) and record["forget_sha256"] == fingerprint(forget)
    assert unlearn_main([*args[:3], str(tmp_path / "run2"), "--forget_data", f"{tmp_path / 'dd'}:test"]) == 2
    assert "no split 'test'" in capsys.readouterr().err
