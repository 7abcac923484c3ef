"""The nine plays of tiny Shakespeare (packaged as genforget/data/files/shakespeare, public domain) as
separate works: the copyright demo's stand-in for a catalogue of copyrighted texts.

The file runs the plays one after another with no marker; its README gives approximate character
offsets and each play's main speakers. :func:`split_plays` places each boundary at the speech,
within a window around the approximate offset, that best separates the speakers seen only in the
play before from those seen only in the play after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# (title, approximate start offset from the data README)
PLAYS = (
    ("Coriolanus", 0),
    ("Richard III", 154_000),
    ("Richard II", 317_000),
    ("Romeo and Juliet", 445_000),
    ("Henry VI, Part 3", 576_000),
    ("The Winter's Tale", 710_000),
    ("Measure for Measure", 846_000),
    ("The Taming of the Shrew", 979_000),
    ("The Tempest", 1_081_000),
)
WINDOW = 4_000  # chars either side of an approximate boundary searched for the real one
_SPEAKER = re.compile(r"^([A-Za-z][A-Za-z '.,-]*):$")


@dataclass
class Speech:
    """One speech: its speaker, its whole text (``SPEAKER:`` line included) and where it starts."""

    speaker: str
    text: str
    start: int


def speeches(text: str) -> list[Speech]:
    """The speeches of the file: blocks separated by a blank line whose first line is ``NAME:``."""
    out, pos = [], 0
    for block in text.split("\n\n"):
        first = block.strip("\n").split("\n", 1)[0]
        m = _SPEAKER.match(first)
        if m and "\n" in block.strip("\n"):
            out.append(Speech(m.group(1), block.strip("\n"), pos))
        pos += len(block) + 2
    return out


def _boundary(sp: list[Speech], approx: int, prev_core: set[str], next_core: set[str]) -> int:
    """Index of the first speech of the next play near ``approx``."""
    only_prev, only_next = prev_core - next_core, next_core - prev_core
    cands = [i for i, s in enumerate(sp) if abs(s.start - approx) <= WINDOW]
    if not cands:
        return min(range(len(sp)), key=lambda i: abs(sp[i].start - approx))

    def score(i: int) -> int:
        before = sum(sp[j].speaker in only_prev for j in cands if j < i)
        after = sum(sp[j].speaker in only_next for j in cands if j >= i)
        return before + after

    return max(cands, key=score)


def split_plays(text: str) -> dict[str, list[Speech]]:
    """``title -> speeches`` of the nine plays of tiny Shakespeare."""
    sp = speeches(text)
    starts = [a for _, a in PLAYS] + [len(text)]

    # Speakers of each play's interior, far from the approximate boundaries.
    def core(k: int) -> set[str]:
        return {s.speaker for s in sp if starts[k] + WINDOW < s.start < starts[k + 1] - WINDOW}

    cores = [core(k) for k in range(len(PLAYS))]
    idx = [0] + [_boundary(sp, starts[k], cores[k - 1], cores[k]) for k in range(1, len(PLAYS))] + [len(sp)]
    return {title: sp[idx[k] : idx[k + 1]] for k, (title, _) in enumerate(PLAYS)}


def load_plays(path: str | Path) -> dict[str, list[Speech]]:
    """:func:`split_plays` of a file."""
    return split_plays(Path(path).read_text())


@dataclass
class Excerpt:
    """A run of whole speeches of one play, cut at a line end to about ``chars`` characters."""

    play: str
    text: str
    speeches: list[Speech]


def excerpts(play: str, sp: list[Speech], n: int, chars: int) -> list[Excerpt]:
    """``n`` excerpts spread evenly over the play, each starting at a speech and holding whole
    lines up to ``chars`` characters (at least one line past its first speaker label)."""
    out = []
    for k in range(n):
        i = (k * len(sp)) // n
        text, used = "", []
        while i < len(sp) and len(text) < chars:
            block, cut = sp[i].text, False
            room = chars - len(text) - (2 if text else 0)
            if len(block) > room:
                lines = block.split("\n")
                keep = [lines[0], lines[1]]  # a speech keeps its label and at least one line
                for line in lines[2:]:
                    if len("\n".join([*keep, line])) > room:
                        break
                    keep.append(line)
                if used and len("\n".join(keep)) > room:
                    break
                block, cut = "\n".join(keep), True
            text = f"{text}\n\n{block}" if text else block
            used.append(sp[i])
            i += 1
            if cut:  # the excerpt ends inside this speech
                break
        out.append(Excerpt(play, text, used))
    return out


def speaker_cloze(ex: Excerpt, per_excerpt: int = 2, min_chars: int = 20) -> list[dict]:
    """KnowMem questions about who speaks: the closing line(s) of a speech as the question, the
    next speech's speaker as the answer (asked as a continuation: ``template="{question}"``)."""
    out = []
    blocks = ex.text.split("\n\n")
    for prev, nxt in zip(blocks, blocks[1:], strict=False):
        lines = prev.split("\n")[1:]  # without the speaker label
        if not lines:
            continue
        q = lines[-1]
        if len(q) < min_chars and len(lines) > 1:
            q = "\n".join(lines[-2:])
        speaker = nxt.split("\n", 1)[0].rstrip(":")
        out.append({"question": q, "answer": speaker, "template": "{question}"})
        if len(out) == per_excerpt:
            break
    return out
