"""Calibration twins: each located record with every identifier replaced by a fresh fake value of
the same type and shape (Faker, seeded). Never trained on: they are the "never seen" level the
calibrated stop and the membership check compare the located records with.

- name: a fresh given and family name, the occurrence's form kept ("Roe, Jane Q." → "Poe,
  Mia K."), the same fake for every occurrence of one person in a record;
- email: a fresh Faker address (case kept);
- phone / IBAN / ID number / other with digits: digits replaced, letters and punctuation kept
  (a phone written two ways in one record gets the same fake digits both times);
- address: numbers replaced, names replaced, street-type words kept;
- work regions: as many fresh Faker words.
"""

from __future__ import annotations

import random
import re

from faker import Faker

from genforget.requests.locate import Hit, Located, LocateResult
from genforget.requests.match import case_like

STREET_WORDS = {"street", "st", "avenue", "ave", "road", "rd", "lane", "ln", "drive", "dr", "suite"}
STREET_WORDS |= {"apt", "blvd", "boulevard", "court", "ct", "way", "place", "pl", "square", "sq"}
_TOKEN = re.compile(r"[^\W\d_]+|\d|.", re.S)


# Data made with Faker from the run's seed (the built-in corpus, a user's synthetic set) draws
# the same sequence as an unsalted TwinMaker(seed): a twin could be a trained person's real
# value (measured on the test corpus: a twin's email was a trained person's), and then the
# "never seen" level the calibrated stop and the membership rows compare with is not unseen.
TWIN_SEED_SALT = 7919


class TwinMaker:
    """Makes twins; one instance per run so the fake values are seeded and differ across records."""

    def __init__(self, seed: int = 0, consistent: bool = False) -> None:
        # consistent: an address written the same way gets the same fake each time (names,
        # emails and digits already do within one cache); the relearn audit shares one cache
        # across a request's records so its twins are one fake person, as the records are one.
        self.consistent = consistent
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed + TWIN_SEED_SALT)
        self.rng = random.Random(seed + TWIN_SEED_SALT)

    def _digits(self, n: int) -> str:
        return "".join(str(self.rng.randrange(10)) for _ in range(n))

    def _shape(self, orig: str, digits: str, from_end: bool) -> str:
        """``orig`` with its digits replaced by ``digits`` (aligned at the start or the end)."""
        n = sum(c.isdigit() for c in orig)
        fill = iter(digits[-n:] if from_end else digits[:n])
        if not any(c.isdigit() for c in orig):  # letters only: replace the letters instead
            return "".join(
                case_like(self.rng.choice("abcdefghijklmnopqrstuvwxyz"), c) if c.isalpha() else c
                for c in orig
            )
        return "".join(next(fill) if c.isdigit() else c for c in orig)

    def _name(self, orig: str, given: list[str], fake_given: list[str], fake_last: str, last: str) -> str:
        out = []
        for tok in _TOKEN.findall(orig):
            if tok.isalpha():
                low = tok.casefold()
                if low == last.casefold():
                    tok = case_like(fake_last, tok)
                elif low in [g.casefold() for g in given]:
                    tok = case_like(fake_given[[g.casefold() for g in given].index(low)], tok)
                elif len(tok) == 1:  # a middle initial
                    tok = case_like(self.rng.choice("ABCDEFGHJKLMNPRSTW"), tok)
            out.append(tok)
        return "".join(out)

    def _address(self, orig: str) -> str:
        out = []
        for tok in _TOKEN.findall(orig):
            if tok.isdigit():
                tok = str(self.rng.randrange(10))
            elif tok.isalpha() and len(tok) > 2 and tok.casefold() not in STREET_WORDS:
                tok = case_like(self.fake.last_name(), tok)
            out.append(tok)
        return "".join(out)

    def value(self, hit: Hit, orig: str, ident_value: str, cache: dict) -> str:
        """A fake of ``orig`` (an occurrence of ``ident_value``) of the same type and shape."""
        key = (hit.req, hit.ident)
        for _ in range(20):
            if hit.type == "name":
                words = ident_value.replace(",", " ").split()
                given, last = words[:-1], words[-1]
                if key not in cache:
                    fg = [self.fake.first_name() for _ in given]
                    fl = self.fake.last_name()
                    cache[key] = (fg, fl)
                fg, fl = cache[key]
                new = self._name(orig, given, fg, fl, last)
            elif hit.type == "email":
                new = cache.setdefault(key, self.fake.email())
                new = new.upper() if orig.isupper() else new
            elif hit.type == "address":
                akey = (key, "address", orig.casefold())
                if not self.consistent or akey not in cache:
                    cache[akey] = self._address(orig)
                new = cache[akey]
            elif hit.type == "work":
                new = " ".join(self.fake.words(max(1, len(orig.split()))))
            else:
                digits = cache.setdefault(key, self._digits(64))
                new = self._shape(orig, digits, from_end=hit.type == "phone")
            if new.casefold() != orig.casefold():
                return new
            cache.pop(key, None)  # an unlucky draw equal to the original: draw again
            if hit.type == "address":
                cache.pop((key, "address", orig.casefold()), None)
        raise RuntimeError(f"could not make a {hit.type} twin different from the original")


def make_twin(rec: Located, res: LocateResult, maker: TwinMaker, cache: dict | None = None) -> dict:
    """``{"text", "spans"}``: the record with every identifier occurrence replaced (fakes drawn
    afresh for this record unless a ``cache`` shared with other records is given)."""
    cache = {} if cache is None else cache
    text, out, spans, pos = rec.text, [], [], 0
    for h in rec.hits:
        if h.start < pos:  # overlaps an occurrence already replaced (two types on one string)
            continue
        orig = text[h.start : h.end]
        ident_value = res.identifiers[h.ident].value if h.ident >= 0 else orig
        new = maker.value(h, orig, ident_value, cache)
        out.append(text[pos : h.start])
        start = sum(len(s) for s in out)
        out.append(new)
        spans.append((start, start + len(new)))
        pos = h.end
    out.append(text[pos:])
    return {"text": "".join(out), "spans": spans}


def make_twins(res: LocateResult, seed: int = 0, records: list[Located] | None = None) -> list[dict]:
    """One twin per located record (in ``res.located`` order unless ``records`` is given)."""
    maker = TwinMaker(seed)
    return [make_twin(r, res, maker) for r in (res.located if records is None else records)]
