"""Model cards for what genforget saves: a ``README.md`` with YAML metadata (``huggingface_hub.ModelCard``).

One helper for every saved model, adapter or pipeline dir (the diffusion side writes its cards
with it; the LM side can too): the metadata the Hub reads (``base_model``, ``library_name``,
``tags``), then what was done — method, config, what was forgotten *only as counts and SHA-256
hashes* — and the outcome figures the caller has. Never pass forget-set text, prompts a user
wants kept private or PII: the card is meant to be published next to the weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a string (UTF-8): how a card or record names a concept or forget example."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_hub_id(name: str) -> bool:
    # "org/name" and not a path that exists here: the Hub validates base_model as a repo id.
    return name.count("/") == 1 and not name.startswith((".", "/")) and not Path(name).exists()


def model_card_text(
    *,
    title: str,
    base_model: str | None,
    library_name: str,
    tags: list[str],
    summary: str,
    method: str,
    config: dict[str, Any],
    forgotten: dict[str, Any],
    results: dict[str, Any] | None = None,
    usage: str | None = None,
) -> str:
    """The card's Markdown (front matter + body). ``forgotten``: counts and hashes only;
    ``results``: figures (numbers and their bars) to show; ``usage``: a code block's content."""
    from huggingface_hub import ModelCardData

    hub_base = base_model if base_model and _is_hub_id(base_model) else None
    data = ModelCardData(
        base_model=hub_base,
        library_name=library_name,
        tags=sorted({"genforget", "machine-unlearning", *tags}),
    )
    body = [f"# {title}", "", summary, ""]
    if base_model and not hub_base:
        body += [f"Base model: a local model (`{Path(base_model).name}`), not a Hub repository.", ""]
    body += ["## What was done", "", f"- method: `{method}`"]
    body += [f"- {k}: `{v}`" for k, v in forgotten.items()]
    body += [
        "",
        "## Configuration",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=True).rstrip(),
        "```",
        "",
    ]
    if results:
        body += ["## Results", "", "```json", json.dumps(results, indent=2, sort_keys=True), "```", ""]
    if usage:
        body += ["## Use", "", "```python", usage.strip(), "```", ""]
    body += ["Made with genforget.", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)


def write_model_card(out_dir: str | Path, **kwargs: Any) -> Path:
    """Write ``out_dir/README.md`` (see :func:`model_card_text` for the arguments); returns its path.
    The text round-trips through ``huggingface_hub.ModelCard`` so a malformed card fails here."""
    from huggingface_hub import ModelCard

    card = ModelCard(model_card_text(**kwargs))
    path = Path(out_dir) / "README.md"
    card.save(path)
    return path
