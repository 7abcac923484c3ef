"""Chat examples: ``{"messages": [{"role", "content"}, ...]}`` rendered with a chat template.

A chat model was trained on its template's rendering of each conversation, so that is what is
unlearned and scored: the text is ``tokenizer.apply_chat_template(messages, tokenize=False)``
(the tokenizer's own template, or one given as ``chat_template``, a Jinja string or file), and the
targets are the assistant turns' contents (or ``spans`` inside them: an assistant message may
carry ``"spans": [[start, end], ...]`` in its own content's characters).

Targets are the contents only, not the template's end-of-turn markers: forgetting is about what
was said, and pushing down the likelihood of ``<|im_end|>`` would teach the model never to stop
talking (and the calibration twins, which replace target characters, would corrupt the markers).

Probes (evaluation) are rendered the same way: the prompt is the conversation up to the assistant
turn with the template's generation prompt (what a user's request looks like), the target that
turn's content; teacher-forced scores use the exact rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase


def load_chat_template(value: str | None) -> str | None:
    """A Jinja chat template from a file path, or the template text itself; None/"" passes."""
    if not value:
        return None
    if "{%" in value or "{{" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"chat_template: file not found: {value} (give a Jinja template file)")
    return path.read_text(encoding="utf-8")


def check_messages(messages: Any, where: str) -> None:
    """Refuse a malformed ``messages`` list (roles and contents must be strings, one assistant
    turn at least: without one there is nothing to unlearn or score)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    for j, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise ValueError(f"{where}: messages[{j}] needs string 'role' and 'content'")
        spans = m.get("spans")
        if spans is not None:
            if m["role"] != "assistant":
                raise ValueError(f"{where}: messages[{j}]: 'spans' go on assistant messages only")
            n = len(m["content"])
            ok = isinstance(spans, list) and all(
                isinstance(sp, list | tuple) and len(sp) == 2 and 0 <= sp[0] < sp[1] <= n for sp in spans
            )
            if not ok:
                raise ValueError(
                    f"{where}: messages[{j}]: spans must be [start, end] pairs within its content"
                )
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise ValueError(f"{where}: no assistant message with content: nothing to unlearn or score")


def _render(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], template: str | None, gen: bool = False
) -> str:
    if template is None and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "chat examples ('messages') need a chat template and this tokenizer has none; pass "
            "--chat_template FILE (chat_template= in the Python API)"
        )
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(
        clean, tokenize=False, add_generation_prompt=gen, chat_template=template
    )


def _turns(
    messages: list[dict], tokenizer: PreTrainedTokenizerBase, template: str | None
) -> tuple[str, list[dict]]:
    """The full rendering and, per assistant turn with content, ``{"prompt", "start", "end",
    "spans"}``: the generation-prompt rendering before it and where its content lies."""
    full = _render(tokenizer, messages, template)
    turns, cursor = [], 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or not m["content"].strip():
            continue
        prompt = _render(tokenizer, messages[:i], template, gen=True) if i else ""
        start = len(prompt) if full.startswith(prompt) else cursor
        content, lead = m["content"], 0
        pos = full.find(content, start)
        if pos < 0:  # templates that trim contents (Llama-2's `| trim`)
            lead = len(content) - len(content.lstrip())
            content = content.strip()
            pos = full.find(content, start)
        if pos < 0:
            raise ValueError(
                f"assistant message {i}: its content does not appear in the rendered chat template "
                "(the template rewrites it); give text + spans examples instead"
            )
        raw = m.get("spans")
        if raw is None:
            spans = [(pos, pos + len(content))]
        else:
            spans = [
                (pos + max(0, a - lead), pos + min(len(content), b - lead))
                for a, b in raw
                if min(len(content), b - lead) > max(0, a - lead)
            ]
        turns.append({"prompt": prompt, "start": pos, "end": pos + len(content), "spans": spans})
        cursor = pos + len(content)
    return full, turns


def render_chat(
    messages: list[dict], tokenizer: PreTrainedTokenizerBase, chat_template: str | None = None
) -> dict:
    """``{"text", "spans"}`` of a chat: its template rendering, spans on the assistant contents."""
    full, turns = _turns(messages, tokenizer, chat_template)
    spans = [sp for t in turns for sp in t["spans"]]
    if not spans:
        raise ValueError("chat example has no assistant content to target (empty spans)")
    return {"text": full, "spans": spans}


def chat_probes(
    messages: list[dict], tokenizer: PreTrainedTokenizerBase, chat_template: str | None = None
) -> list[dict]:
    """One probe per assistant turn: ``prompt`` (the conversation before it + the generation
    prompt), ``target`` (its content), and ``text`` + ``spans`` (the exact rendering up to the end
    of that content, for teacher-forced scores)."""
    full, turns = _turns(messages, tokenizer, chat_template)
    return [
        {
            "prompt": t["prompt"],
            "target": full[t["start"] : t["end"]],
            "text": full[: t["end"]],
            "spans": t["spans"] or [(t["start"], t["end"])],
        }
        for t in turns
    ]


def render_examples(
    examples: list[dict], tokenizer: PreTrainedTokenizerBase, chat_template: str | None = None
) -> list[dict]:
    """Chat examples rendered to ``{"text", "spans"}``; every other example as it is."""
    out = []
    for i, ex in enumerate(examples):
        if isinstance(ex, dict) and "messages" in ex:
            try:
                out.append(render_chat(ex["messages"], tokenizer, chat_template))
            except ValueError as e:
                raise ValueError(f"chat example {i}: {e}") from e
        else:
            out.append(ex)
    return out


def has_chat(examples: list[Any] | None) -> bool:
    """Whether any example is a chat (``messages``)."""
    return any(isinstance(ex, dict) and "messages" in ex for ex in examples or [])


class TemplateRenderer:
    """``messages -> text`` with the tokenizer saved at ``source`` (loaded on the first chat met, so
    data without chats never loads it): how a deletion request reads chat records. A class, not a
    closure, so a locate task on another process or node can receive it (the tokenizer is not
    pickled; each process loads its own)."""

    def __init__(self, source: str, chat_template: str | None = None) -> None:
        self.source, self.template = str(source), chat_template
        self._tok: Any = None

    def __call__(self, messages: list) -> str:
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.source)
        return _render(self._tok, messages, self.template)

    def __getstate__(self) -> dict:
        return {"source": self.source, "template": self.template, "_tok": None}

    def __repr__(self) -> str:  # part of a locate run's fingerprint: same source + template, same text
        import hashlib

        h = hashlib.sha256((self.template or "").encode()).hexdigest()[:16]
        return f"TemplateRenderer({self.source!r}, template sha256 {h})"


def template_renderer(tokenizer_source: str, chat_template: str | None = None) -> Callable[[list], str]:
    """A :class:`TemplateRenderer` for ``tokenizer_source`` (``chat_template``: a file or a
    template string overriding the tokenizer's own)."""
    return TemplateRenderer(tokenizer_source, load_chat_template(chat_template))
