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


def digits_of(s: str) -> str:
    return "".join(c for c in nfkc(s) if c.isdigit())


def alnum_of(s: str) -> str:
    return "".join(c for c in nfkc(s) if c.isalnum()).upper()


def _spaced(chars: str, sep: str) -> str:
    return sep.join(re.escape(c) for c in chars)


def phone_pattern(value: str, region: str = "US") -> str:
    """Pattern for a phone number: national digits, optional country code / trunk 0 before."""
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
    prefix = rf"(?:(?:\+|00)[ \t]*{cc}[ \t.\-]*|{cc}[ \t.\-]*)?" if cc else r"(?:\+[ \t]*)?"
    return rf"(?<![\d+]){prefix}(?:\(?0\)?[ \t.\-]*)?\(?{_spaced(national, SEP_DIGITS)}(?!\d)"


def iban_pattern(value: str) -> str:
    from stdnum import iban

    return rf"(?<!\w){_spaced(iban.compact(nfkc(value)), SEP_ALNUM)}(?!\w)"


def id_pattern(value: str) -> str:
    chars = alnum_of(value)
    if len(chars) < 3:
        raise ValueError("an ID number needs at least 3 letters/digits")
    return rf"(?<!\w){_spaced(chars, SEP_ALNUM)}(?!\w)"


def email_pattern(value: str) -> str:
    return rf"(?<![\w.+\-]){re.escape(nfkc(value).strip())}(?![\w\-]|\.\w)"


def name_pattern(value: str) -> str:
    """Given and family names in the two orders, with an optional middle initial."""
    words = nfkc(value).replace(",", " ").split()
    if len(words) == 1:
        return rf"(?<!\w){re.escape(words[0])}(?!\w)"
    given = r"\s+".join(re.escape(w) for w in words[:-1])
    last = re.escape(words[-1])
    initial = r"(?:\s+(?-i:[A-Z])\.?)"
    return rf"(?<!\w)(?:{given}{initial}?\s+{last}|{last},\s*{given}{initial}?)(?!\w)"


def text_pattern(value: str) -> str:
    """Free text (addresses, ``other``): words with any whitespace (addresses: commas) between."""
    words = [w for w in re.split(r"[\s,]+", nfkc(value)) if w]
    body = r"[\s,]+".join(re.escape(w) for w in words)
    start = r"(?<!\w)" if words[0][:1].isalnum() else ""
    end = r"(?!\w)" if words[-1][-1:].isalnum() else ""
    return f"{start}{body}{end}"


def identifier_pattern(ident: Identifier, region: str = "US") -> str:
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


class Matcher:
    """All identifiers of a request queue, one compiled pattern per type.

    :meth:`finditer` yields ``(start, end, Identifier)`` over a string; matches of different
    types may overlap (callers merge spans).
    """

    def __init__(self, identifiers: list[Identifier], regions: dict[int, str] | None = None) -> None:
        regions = regions or {}
        self.identifiers = identifiers
        self.by_group = {i.group: i for i in identifiers}
        self.patterns: dict[str, re.Pattern] = {}
        for typ in dict.fromkeys(i.type for i in identifiers):
            alts = [
                f"(?P<{i.group}>{identifier_pattern(i, regions.get(i.req, 'US'))})"
                for i in identifiers
                if i.type == typ
            ]
            self.patterns[typ] = re.compile("|".join(alts), re.IGNORECASE)

    def finditer(self, text: str):
        for pat in self.patterns.values():
            for m in pat.finditer(text):
                yield m.start(), m.end(), self.by_group[m.lastgroup]

    def single(self, ident: Identifier, region: str = "US") -> re.Pattern:
        """The pattern of one identifier alone (probe hit tests)."""
        return re.compile(identifier_pattern(ident, region), re.IGNORECASE)


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
