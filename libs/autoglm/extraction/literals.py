"""Literals as a knowledge graph holds them, and the surface forms a text may give them.

One direction serves extraction: a date the text writes "November 18th, 1923" is stored as
``1923-11-18``; "1,219" as ``1219``. The other serves training: to find where a text states a
gold value (``1923-11-18``, ``2014.0``), the forms a writer would use are generated.
"""

from __future__ import annotations

import re

MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH_INDEX = {name: n + 1 for n, name in enumerate(MONTHS)}
_MONTH_INDEX.update({name[:3]: n + 1 for n, name in enumerate(MONTHS)})
_MONTH_INDEX["sept"] = 9
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTH_INDEX, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_DATE_FORMS = [
    re.compile(rf"^{_MONTH}\s+{_DAY},?\s+{_YEAR}$", re.IGNORECASE),  # November 18th, 1923
    re.compile(rf"^(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}$", re.IGNORECASE),
    re.compile(r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})$"),
    re.compile(r"^(?P<day>\d{1,2})[/.](?P<month>\d{1,2})[/.](?P<year>\d{4})$"),
]
_MONTH_YEAR = re.compile(rf"^{_MONTH},?\s+{_YEAR}$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def _month_number(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        return value if 1 <= value <= 12 else None
    return _MONTH_INDEX.get(text.lower().rstrip("."))


def normalise_date(text: str) -> str | None:
    """ISO 8601 (``1923-11-18``, or ``1923-11`` for a month) of a date written out, else None."""
    text = " ".join(text.split())
    for form in _DATE_FORMS:
        match = form.match(text)
        if match:
            month = _month_number(match.group("month"))
            day = int(match.group("day"))
            if month is None or not 1 <= day <= 31:
                return None
            return f"{int(match.group('year')):04d}-{month:02d}-{day:02d}"
    match = _MONTH_YEAR.match(text)
    if match:
        month = _month_number(match.group("month"))
        return f"{int(match.group('year')):04d}-{month:02d}" if month else None
    return None


def normalise_number(text: str) -> str | None:
    """A number without thousands separators (``1,219`` -> ``1219``), else None."""
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    return text.replace(",", "")


def normalise_literal(text: str) -> tuple[str, bool]:
    """``(value, is_literal)``: dates in ISO form, numbers plain; anything else unchanged."""
    date = normalise_date(text)
    if date is not None:
        return date, True
    number = normalise_number(text)
    if number is not None:
        return number, True
    return text, False


def surface_forms(value: str) -> list[str]:
    """Ways a text may write ``value`` (a gold literal or name), most specific first."""
    forms = [value]
    iso = _ISO_DATE.match(value)
    if iso:
        year, month, day = int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
        if 1 <= month <= 12:
            name = MONTHS[month - 1].capitalize()
            suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
            forms += [
                f"{name} {day}, {year}",
                f"{name} {day}{suffix}, {year}",
                f"{day} {name} {year}",
                f"{day}{suffix} {name} {year}",
                f"{name} {day} {year}",
                f"{name} {day}{suffix} {year}",
                f"{day}{suffix} of {name} {year}",
                f"{day}{suffix} of {name}, {year}",
                f"{name} {year}",
                str(year),
            ]
        return forms
    if re.fullmatch(r"[+-]?\d+\.0+", value):
        whole = value.split(".")[0]
        forms += [whole, f"{int(whole):,}"]
    elif re.fullmatch(r"[+-]?\d+", value) and abs(int(value)) >= 1000:
        forms.append(f"{int(value):,}")
    return forms
