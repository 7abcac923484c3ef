"""Tokenizers longer than the model's embedding table.

A tokenizer class may add special tokens the model was never given rows for: transformers'
``Qwen2Tokenizer`` adds ``<|endoftext|>`` to any vocabulary, so a small Qwen2 trained with its
own BPE has one id more in the tokenizer than in the embedding. That is harmless while the data
never produces those ids (a special token appears only when its literal text is in the data), so
it is accepted, and the tokenized data is checked instead (:func:`check_ids_fit`). Ordinary tokens
beyond the table are a real mismatch (another model's tokenizer, or tokens added without
``resize_token_embeddings``) and are refused, saying which. A pad token beyond the table would be
looked up at every padded position: :func:`genforget.load_model` gives such a model the missing
rows (and says so); a model handed in directly is refused with the fix.
"""

from __future__ import annotations

import warnings

import torch

from genforget.lm.specials import pad_id


def _rows(model: torch.nn.Module) -> int | None:
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return getattr(emb, "num_embeddings", None)


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return ids | {i for i, tok in decoder.items() if getattr(tok, "special", False)}


def check_vocab_fits(model: torch.nn.Module, tokenizer) -> None:
    """Refuse a tokenizer with ordinary tokens, or its pad token, beyond the embedding table;
    special tokens beyond it are accepted (see the module docstring)."""
    rows = _rows(model)
    if rows is None or len(tokenizer) <= rows:
        return
    extra = range(rows, len(tokenizer))
    ordinary = [i for i in extra if i not in _special_ids(tokenizer)]
    head = f"tokenizer/model mismatch: the tokenizer has {len(tokenizer)} tokens, the model's embedding {rows} rows"
    if ordinary:
        raise ValueError(
            f"{head}, and {len(ordinary)} of the ids beyond it are ordinary tokens text can produce "
            f"(ids {ordinary[:5]}): this is not the tokenizer this model was trained with, or tokens "
            "were added without resizing. Fix: load the tokenizer saved with this model, or call "
            "model.resize_token_embeddings(len(tokenizer)) and train the new rows first"
        )
    pad = pad_id(tokenizer)  # the id padding uses: the pad token, else EOS
    if pad is not None and pad >= rows:
        raise ValueError(
            f"{head}; the ids beyond it are special tokens, but one of them is the pad token (id {pad}), "
            "which padding would look up. Fix: set tokenizer.pad_token to a token inside the vocabulary, "
            "or call model.resize_token_embeddings(len(tokenizer)) (genforget.load_model does this itself)"
        )


def fit_embedding_to_pad(model: torch.nn.Module, tokenizer) -> bool:
    """When only special tokens lie beyond the embedding and the pad token is one of them, resize
    the embedding to the tokenizer (a warning says so); returns whether it resized."""
    rows = _rows(model)
    pad = pad_id(tokenizer)  # the id padding uses: the pad token, else EOS
    if rows is None or pad is None or pad < rows or len(tokenizer) <= rows:
        return False
    if any(i not in _special_ids(tokenizer) for i in range(rows, len(tokenizer))):
        return False  # a real mismatch: check_vocab_fits says so
    model.resize_token_embeddings(len(tokenizer))
    warnings.warn(
        f"the pad token (id {pad}) lay beyond the model's embedding of {rows} rows; the embedding was "
        f"resized to the tokenizer's {len(tokenizer)} tokens (new rows for special tokens only, never "
        "trained; a model saved from here has the larger table)",
        stacklevel=3,
    )
    return True


def check_ids_fit(model: torch.nn.Module, feats: list[dict], name: str) -> None:
    """Refuse tokenized examples holding an id beyond the embedding table (a special token's
    literal text in the data), naming the set and the example index, never its text."""
    rows = _rows(model)
    if rows is None:
        return
    for f in feats:
        top = max(f["input_ids"])
        if top >= rows:
            raise ValueError(
                f"{name} example {f.get('idx', '?')} holds token id {top}, beyond the model's embedding of "
                f"{rows} rows (a special token's text inside the data). Fix: remove that text from the "
                "data, or call model.resize_token_embeddings(len(tokenizer))"
            )
