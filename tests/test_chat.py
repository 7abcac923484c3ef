"""Chat data end to end (issue 27): ``{"messages"}`` examples rendered with the chat template
(the tokenizer's, or a Jinja file the test writes), the loss on assistant contents, probes
rendered the same way; through the API (a ``datasets`` messages column), ``genforget unlearn``,
``genforget eval`` (a ``jsonl:`` suite, the score cache) and ``genforget forget``."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import yaml
from zoo import CHATML, LLAMA2_CHAT, build_model, build_tokenizer, examples, memorise, training_ids

import genforget
from genforget.cli.main import main
from genforget.lm.chat import chat_probes, render_chat
from genforget.lm.data import IGNORE, tokenize_example

CONVO = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Who is Ann?"},
    {"role": "assistant", "content": "Ann Lee, a baker."},
    {"role": "user", "content": "Her email?"},
    {"role": "assistant", "content": "It is ann.lee@mailbox.org, she said.", "spans": [[6, 25]]},
]


def test_spans_cover_the_assistant_contents_and_nothing_of_the_template():
    tok = build_tokenizer("qwen2")
    out = render_chat(CONVO, tok)
    assert out["text"] == tok.apply_chat_template(
        [{k: m[k] for k in ("role", "content")} for m in CONVO], tokenize=False
    )
    assert [out["text"][a:b] for a, b in out["spans"]] == ["Ann Lee, a baker.", "ann.lee@mailbox.org"]
    feat = tokenize_example({"messages": CONVO}, tok)
    targets = tok.decode([t for t in feat["labels"] if t != IGNORE])
    assert targets == "Ann Lee, a baker.ann.lee@mailbox.org"  # no <|im_end|>, no role names
    probes = chat_probes(CONVO, tok)
    assert [p["target"] for p in probes] == ["Ann Lee, a baker.", "It is ann.lee@mailbox.org, she said."]
    gen = tok.apply_chat_template([{k: m[k] for k in ("role", "content")} for m in CONVO[:4]], tokenize=False,
                                  add_generation_prompt=True)  # fmt: skip
    assert probes[1]["prompt"] == gen and gen.endswith("<|im_start|>assistant\n")
    assert probes[1]["text"][slice(*probes[1]["spans"][0])] == "ann.lee@mailbox.org"


def test_a_trimming_template_with_bos_and_a_missing_template():
    tok = build_tokenizer("sentencepiece")  # no template of its own
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  Oslo  "}]
    with pytest.raises(ValueError, match="--chat_template FILE"):
        render_chat(msgs, tok)
    trim = LLAMA2_CHAT.replace(
        "{{ m['content'] }} {{ eos_token }}", "{{ m['content'] | trim }} {{ eos_token }}"
    )
    out = render_chat(msgs, tok, trim)
    assert out["text"].startswith("<s>[INST] Hi [/INST] Oslo </s>")
    assert [out["text"][a:b] for a, b in out["spans"]] == ["Oslo"]
    with pytest.raises(ValueError, match="has none"):
        tokenize_example({"messages": msgs}, tok)
    tok.chat_template = trim
    ids = tokenize_example({"messages": msgs}, tok)["input_ids"]
    assert ids == tok(out["text"], add_special_tokens=False)["input_ids"] and ids.count(tok.bos_token_id) == 1


@pytest.fixture(scope="module")
def qwen_victim(one_thread):
    tok = build_tokenizer("qwen2")
    model = build_model("qwen2", tok)
    memorise(model, training_ids("qwen2", tok))
    return model, tok


def test_api_unlearns_a_messages_dataset_and_keeps_retain(qwen_victim):
    from datasets import Dataset

    model, tok = qwen_victim
    chats = examples("qwen2")
    before = genforget.evaluate(model, tok, chats[:2], chats[2:])
    assert before["forget_verbatim_extraction"] == 1.0 == before["retain_verbatim_extraction"]
    out = genforget.unlearn(
        copy.deepcopy(model), tok, Dataset.from_list(chats[:2]), chats[2:], method="npo",
        learning_rate=1e-3, max_steps=40, calibration=False,
    )  # fmt: skip
    after = genforget.evaluate(out, tok, Dataset.from_list(chats[:2]).to_list(), chats[2:])
    assert after["forget_verbatim_extraction"] == 0.0
    assert after["retain_verbatim_extraction"] >= 0.75
    # the same through a template given by text (the tokenizer's own is the same ChatML)
    again = genforget.evaluate(out, tok, chats[:2], chat_template=CHATML)
    assert again["forget_verbatim_extraction"] == 0.0


@pytest.fixture(scope="module")
def llama2_dirs(tmp_path_factory, one_thread):
    """A memorising victim of the pad-less SentencePiece family, saved *without* its chat
    template (given as a file), chat JSONL data, a jsonl suite."""
    root = tmp_path_factory.mktemp("chat")
    tok = build_tokenizer("llama2_chat")
    model = build_model("llama2_chat", tok)
    memorise(model, training_ids("llama2_chat", tok))
    tok.chat_template = None
    model.save_pretrained(root / "victim")
    tok.save_pretrained(root / "victim")
    (root / "chat.jinja").write_text(LLAMA2_CHAT)
    chats = examples("llama2_chat")
    data = root / "data"
    data.mkdir()
    for name, rows in (("forget", chats[:2]), ("retain", chats[2:5]), ("holdout", chats[5:])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = {"name": "chat", "data": f"jsonl:{data}", "any_k": 0, "audits": ["relearn", "relearn_speed"],
             "relearn_steps": 2, "relearn_budgets": [0, 2]}  # fmt: skip
    (root / "suite.yaml").write_text(yaml.safe_dump(suite))
    return root


def test_cli_unlearn_and_eval_on_chat_data(llama2_dirs, tmp_path, capsys):
    root = llama2_dirs
    out = tmp_path / "out"
    argv = ["unlearn", "--model_name_or_path", str(root / "victim"), "--forget_data", str(root / "data/forget.jsonl"),
            "--retain_data", str(root / "data/retain.jsonl"), "--output_dir", str(out), "--method", "npo",
            "--learning_rate", "1e-3", "--max_steps", "40"]  # fmt: skip
    assert main(argv) == 2  # chat data, no template: one clear line
    assert "--chat_template FILE" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*argv, "--chat_template", str(root / "chat.jinja")]) == 0
    rec = json.loads((out / "genforget_run.json").read_text())
    assert rec["tokenization"]["special_tokens"] == "<s> + text"
    assert rec["tokenization"]["padding"].startswith("eos ") and rec["tokenization"]["chat_template_sha256"]
    assert (
        json.loads((out / "tokenizer_config.json").read_text()).get("chat_template")
        or (out / "chat_template.jinja").is_file()
    )

    ev = ["eval", "--model", str(out), "--victim", str(root / "victim"), "--suite", str(root / "suite.yaml"),
          "--chat_template", str(root / "chat.jinja"), "--cache_dir", str(tmp_path / "cache")]  # fmt: skip
    capsys.readouterr()
    assert main([*ev, "--output_dir", str(tmp_path / "e1")]) == 0
    r1 = json.loads((tmp_path / "e1/report.json").read_text())
    assert r1["models"]["victim"]["forget_verbatim_extraction"] == 1.0
    assert r1["models"]["out"]["forget_verbatim_extraction"] <= 0.5
    assert r1["details"]["cached_scores"] == []
    assert "held_out_forget_verbatim_extraction" in r1["audits"]["out"]["relearn"]  # audits read chats too
    assert r1["relearn_speed"]["metric"] == "forget_verbatim_extraction"
    assert main([*ev, "--output_dir", str(tmp_path / "e2")]) == 0  # the victim's scores come from the cache
    assert "victim: scores read from the cache" in capsys.readouterr().out
    r2 = json.loads((tmp_path / "e2/report.json").read_text())
    assert r2["details"]["cached_scores"] == ["victim"] and r2["models"]["victim"] == r1["models"]["victim"]
    no_template = [a for a in ev if a not in ("--chat_template", str(root / "chat.jinja"))]
    assert main([*no_template, "--output_dir", str(tmp_path / "e3")]) == 2  # not an internal error
    assert "has no chat template" in capsys.readouterr().err


def test_forget_cli_locates_chat_records_of_a_pad_less_model(llama2_dirs, tmp_path):
    root = llama2_dirs
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in examples("llama2_chat")))
    req = tmp_path / "req.yaml"
    req.write_text(
        yaml.safe_dump({"id": "R1", "kind": "person", "identifiers": {"email": ["ann.lee@mailbox.org"]}})
    )
    out = tmp_path / "forget"
    argv = ["forget", "--model", str(root / "victim"), "--data", str(train), "--request", str(req),
            "--output_dir", str(out), "--chat_template", str(root / "chat.jinja"), "--max_steps", "40", "--learning_rate", "1e-3",
            "--relearn_speed", "false", "--samples", "0", "--retain_eval", "4"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(argv)
    assert rc in (0, 1)  # ran to a verdict (1: a bar missed on this tiny set), not a usage error or crash
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["located"]["records"] == 1 and cert["status"] == "unlearned"
    greedy = next(r for r in cert["verification"] if r["name"] == "forget extraction, greedy")
    assert greedy["before"] == 1.0 and greedy["after"] < greedy["before"]
