"""The clocks in a signature: HTTP-dates, unix timestamps, and the allowed skew."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .common import SignatureError


def within(moment: datetime, now: datetime, max_skew: timedelta) -> bool:
    """Whether ``moment`` lies within ``max_skew`` of ``now``, either side."""
    return now - max_skew <= moment <= now + max_skew


_TIMESTAMP = re.compile(r"\d{1,12}(?:\.\d{1,9})?")


def timestamp(raw: str, what: str) -> datetime:
    """A unix timestamp as sent in cavage ``created``/``expires`` (integer, or decimal)."""
    if not _TIMESTAMP.fullmatch(raw):
        raise SignatureError(f"malformed {what}")
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureError(f"malformed {what}") from None


def epoch(value: int, what: str) -> datetime:
    """An RFC 9421 ``created``/``expires`` integer as a datetime."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureError(f"malformed {what}") from None


_MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
# The three HTTP-date forms of RFC 7231 section 7.1.1.1 (IMF-fixdate, RFC 850, asctime).
# Matched by hand rather than strptime, whose day and month names depend on the locale.
_IMF_FIXDATE = re.compile(
    r"(?:mon|tue|wed|thu|fri|sat|sun), (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) gmt", re.I
)
_RFC850_DATE = re.compile(
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), "
    r"(\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) gmt",
    re.I,
)
_ASCTIME_DATE = re.compile(
    r"(?:mon|tue|wed|thu|fri|sat|sun) ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})", re.I
)


def parse_http_date(value: str) -> datetime | None:
    """Parse an HTTP-date; None when it is not one (Mastodon rejects such requests)."""
    text = value.strip()
    if m := _IMF_FIXDATE.fullmatch(text):
        day, month, year, hh, mm, ss = m.groups()
    elif m := _RFC850_DATE.fullmatch(text):
        day, month, yy, hh, mm, ss = m.groups()
        year = str(1900 + int(yy) if int(yy) >= 70 else 2000 + int(yy))
    elif m := _ASCTIME_DATE.fullmatch(text):
        month, day, hh, mm, ss, year = m.groups()
    else:
        return None
    month_no = _MONTHS.get(month.lower())
    if month_no is None:
        return None
    try:
        return datetime(int(year), month_no, int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
    except ValueError:
        return None
