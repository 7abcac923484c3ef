"""Identifier matching that survives the formats real data has.

One compiled pattern per identifier type (an alternation of every value of that type in the
queue, one named group per value), run over NFKC-normalised text with ``re.IGNORECASE``:

- all types: case, runs of whitespace, Unicode forms (NFKC: composed/decomposed accents,
  full-width digits, ligatures);
- phone: parsed with ``phonenumbers`` (Google's libphonenumber rules) into country code +
  national number, then matched on the digits with any of `` .-()/`` between them, with or
  without the country code or a trunk 0: "+1 (555) 010-0199" finds "555.010.0199",
  "5550100199" and "1-555-010-0199";
- IBAN (compacted and checked with ``python-stdnum``) and ID numbers: on their letters and
  digits, spaces/dashes/dots between them ignored;
- email: case-insensitive, not inside a longer address;
- name: "Jane Roe", "Jane Q. Roe", "Jane Q Roe", "Roe, Jane", "Roe, Jane Q.".

Why regular expressions and not an Aho–Corasick automaton: the values must match with
separators *between* their characters, which a literal-pattern automaton cannot express
without enumerating every spelling; Python's ``re`` scans a joined chunk of records in C (see
:mod:`genforget.requests.locate`), which meets the benchmark's budget (bench/locate.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

SEP_DIGITS = r"[ \t.\-()/]{0,3}"  # between the digits of a phone number
SEP_ALNUM = r"[ \t.\-/]{0,2}"  # between the characters of an IBAN / ID number
# What may not come right before an occurrence, per type (checked in Python, see Matcher).
NOT_BEFORE = {"email": re.compile(r"[\w.+\-]"), "phone": re.compile(r"[\d+]")}
_WORDCHAR = re.compile(r"\w")


@dataclass(frozen=True)
class Identifier:
    """One value of one request: ``key`` is ``(request index, type, value index)``."""

    req: int
    type: str
    index: int
    value: str

    @property
    def group(self) -> str:
        return f"r{self.req}_{self.type}_{self.index}"


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def case_like(new: str, old: str) -> str:
    """``new`` in the case of ``old`` (UPPER, lower or Capitalised): a replacement that reads as
    the text it replaces (twins, counterfactual rewrites)."""
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old.islower():
        return new.lower()
    return new[:1].upper() + new[1:]


def digits_of(s: str) -> str:
    return "".join(c for c in nfkc(s) if c.isdigit())


def alnum_of(s: str) -> str:
    return "".join(c for c in nfkc(s) if c.isalnum()).lower()


def _spaced(chars: str, sep: str) -> str:
    return sep.join(re.escape(c) for c in chars)


def phone_parts(value: str, region: str = "US") -> tuple[str, str]:
    """``(country code, national digits)`` of a phone number (libphonenumber's parse)."""
    import phonenumbers

    cc, national = "", digits_of(value)
    try:
        num = phonenumbers.parse(nfkc(value), region)
        cc = str(num.country_code)
        national = ("0" * (num.number_of_leading_zeros or 0) if num.italian_leading_zero else "") + str(
            num.national_number
        )
    except phonenumbers.NumberParseException:
        pass  # not a parseable number: match its digits as written
    if len(national) < 4:
        raise ValueError("a phone number needs at least 4 digits")
    return cc, national


def phone_pattern(value: str, region: str = "US") -> str:
    """The national digits with separators; the country code / trunk 0 / "(" before them are
    taken by :meth:`Matcher._extend_phone`."""
    return rf"{_spaced(phone_parts(value, region)[1], SEP_DIGITS)}(?!\d)"


def iban_pattern(value: str) -> str:
    from stdnum import iban

    return rf"{_spaced(iban.compact(nfkc(value)).lower(), SEP_ALNUM)}(?!\w)"


def id_pattern(value: str) -> str:
    chars = alnum_of(value)
    if len(chars) < 3:
        raise ValueError("an ID number needs at least 3 letters/digits")
    return rf"{_spaced(chars, SEP_ALNUM)}(?!\w)"


def email_pattern(value: str) -> str:
    return rf"{re.escape(nfkc(value).strip().lower())}(?![\w\-]|\.\w)"


def name_pattern(value: str) -> str:
    """Given and family names in the two orders, with an optional middle initial."""
    words = nfkc(value).lower().replace(",", " ").split()
    if len(words) == 1:
        return rf"{re.escape(words[0])}(?!\w)"
    given = r"\s+".join(re.escape(w) for w in words[:-1])
    last = re.escape(words[-1])
    initial = r"(?:\s+[^\W\d_](?:\.|(?!\w)))"
    return rf"(?:{given}{initial}?\s+{last}|{last},\s*{given}{initial}?)(?!\w)"


def text_pattern(value: str) -> str:
    """Free text (addresses, ``other``): words with any whitespace (addresses: commas) between."""
    words = [w for w in re.split(r"[\s,]+", nfkc(value).lower()) if w]
    body = r"[\s,]+".join(re.escape(w) for w in words)
    return body + (r"(?!\w)" if words[-1][-1:].isalnum() else "")


def identifier_pattern(ident: Identifier, region: str = "US") -> str:
    """The core pattern of one identifier, over lower-cased NFKC text. It starts with a literal
    character (no leading look-behind or optional group), so ``re`` searches for that character
    in C instead of trying the whole pattern at every position: 3-10x faster on large chunks."""
    t = ident.type
    if t == "phone":
        return phone_pattern(ident.value, region)
    if t == "iban":
        return iban_pattern(ident.value)
    if t == "id_number":
        return id_pattern(ident.value)
    if t == "email":
        return email_pattern(ident.value)
    if t == "name":
        return name_pattern(ident.value)
    return text_pattern(ident.value)


# What a prefilter view deletes (every separator a pattern allows between characters, and NUL,
# which the chunked matcher turns into a space) and what an anchor may not hold (characters
# that JSON escapes, so their raw bytes differ from the text).
VIEW_DELETE = " \t.-()/\x00"
_VIEW_DELETE_MAP = {ord(c): None for c in VIEW_DELETE}
_ANCHOR_CUT = re.compile(r'["\\\x00-\x1f\x7f]')


def view_of(low: str) -> str:
    """The prefilter's view of lower-cased NFKC text: separators deleted."""
    return low.translate(_VIEW_DELETE_MAP)


def best_anchor(candidates: list[str]) -> str | None:
    """The longest piece of ``candidates`` (each a literal every match contains, lower-cased)
    left in the view with no character JSON escapes; None when nothing is left."""
    pieces = [p for c in candidates for p in _ANCHOR_CUT.split(view_of(c)) if p]
    return max(pieces, key=lambda p: (len(p.encode()), p)) if pieces else None


def identifier_anchor(ident: Identifier, region: str = "US") -> str | None:
    """A substring that the prefilter's view (:func:`view_of` of the lower-cased NFKC text) holds
    wherever :func:`identifier_pattern` matches: the literals of each pattern, separators
    deleted. Kept next to the patterns: a pattern that changes must change its anchor."""
    t, v = ident.type, nfkc(ident.value)
    if t == "phone":
        cands = [phone_parts(ident.value, region)[1]]
    elif t == "iban":
        from stdnum import iban

        cands = [iban.compact(v).lower()]
    elif t == "id_number":
        cands = [alnum_of(ident.value)]
    elif t == "email":
        cands = [v.strip().lower()]
    elif t == "name":
        cands = v.lower().replace(",", " ").split()  # each word is a literal of the pattern
    else:
        cands = [w for w in re.split(r"[\s,]+", v.lower()) if w]
    return best_anchor(cands)


class Matcher:
    """All identifiers of a request queue, one compiled pattern per type.

    :meth:`finditer` yields ``(start, end, Identifier)`` over NFKC text; matches of different
    types may overlap (callers merge spans). Patterns run on the lower-cased text; the rare text
    whose lower-casing changes its length runs them with ``re.IGNORECASE`` instead. The left
    boundary of a match is checked in Python (matches are rare, so this costs nothing), which
    keeps every pattern starting with a literal.
    """

    def __init__(self, identifiers: list[Identifier], regions: dict[int, str] | None = None) -> None:
        regions = regions or {}
        self.identifiers = identifiers
        self.by_group = {i.group: i for i in identifiers}
        self.cc = {
            i.group: phone_parts(i.value, regions.get(i.req, "US"))[0]
            for i in identifiers
            if i.type == "phone"
        }
        self.patterns: dict[str, re.Pattern] = {}
        self.patterns_i: dict[str, re.Pattern] = {}
        for typ in dict.fromkeys(i.type for i in identifiers):
            alts = "|".join(
                f"(?P<{i.group}>{identifier_pattern(i, regions.get(i.req, 'US'))})"
                for i in identifiers
                if i.type == typ
            )
            self.patterns[typ] = re.compile(alts)
            self.patterns_i[typ] = re.compile(alts, re.IGNORECASE)

    def _extend_phone(self, text: str, s: int, cc: str) -> int | None:
        """Start of the occurrence including a country code, trunk 0 or "(" written before the
        national digits; None when a digit or "+" that is not part of them comes right before."""
        before = text[max(0, s - 12) : s]
        code = rf"(?:(?:\+|00)[ \t]*{cc}[ \t.\-]*|{cc}[ \t.\-]*)?" if cc else r"(?:\+[ \t]*)?"
        m = re.search(rf"{code}(?:\(?0\)?[ \t.\-]*)?\(?$", before)
        s2 = s - (len(m.group()) if m else 0)
        if s2 > 0 and NOT_BEFORE["phone"].match(text, s2 - 1):
            return None
        return s2

    def finditer(self, text: str):
        low = text.lower()
        pats = self.patterns if len(low) == len(text) else self.patterns_i
        scan = low if pats is self.patterns else text
        for typ, pat in pats.items():
            not_before = NOT_BEFORE.get(typ, _WORDCHAR)
            for m in pat.finditer(scan):
                s, e = m.span()
                if typ == "phone":
                    s = self._extend_phone(text, s, self.cc[m.lastgroup])
                    if s is None:
                        continue
                elif s > 0 and not_before.match(text, s - 1):
                    continue
                yield s, e, self.by_group[m.lastgroup]

    def search(self, text: str) -> bool:
        """Whether any identifier occurs in ``text`` (NFKC-normalised here)."""
        return next(self.finditer(nfkc(text)), None) is not None


def normalise_with_map(text: str) -> tuple[str, list[int] | None, list[int] | None]:
    """NFKC text and, when it differs from ``text``, maps from its offsets back to ``text``'s.

    Returns ``(norm, starts, ends)``: a span ``(a, b)`` of ``norm`` is ``(starts[a], ends[b-1])``
    of ``text``. Each base character is normalised with the combining marks that follow it, so
    composed and decomposed accents map to the same original span.
    """
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text, None, None
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        piece = unicodedata.normalize("NFKC", text[i:j])
        out.append(piece)
        starts.extend([i] * len(piece))
        ends.extend([j] * len(piece))
        i = j
    return "".join(out), starts, ends


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, overlapping/adjacent spans merged."""
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]
