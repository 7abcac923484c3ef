"""Data: the built-in fictitious-PII corpus and loaders for JSONL, TOFU, MUSE and ``datasets``."""

from genforget.data.loaders import as_examples, from_dataset, load_jsonl, load_tofu
from genforget.data.muse import MuseData, load_muse
from genforget.data.pii import PII_FIELDS, PIICorpus, build_pii_corpus

__all__ = [
    "MuseData",
    "PII_FIELDS",
    "PIICorpus",
    "as_examples",
    "build_pii_corpus",
    "from_dataset",
    "load_jsonl",
    "load_muse",
    "load_tofu",
]
