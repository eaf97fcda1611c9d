"""Reading a record's id from a URL (a path segment or a query value) without trusting its size.

Hand-written: two checks around ``int()`` that no library makes for us.
"""

from __future__ import annotations

MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL: a larger one can name no row
_MAX_DIGITS = len(str(MAX_ID))


def id_value(raw: str) -> int | None:
    """``raw`` as a whole number, or None when it is not ASCII digits.

    A number past ``MAX_ID`` comes back as ``MAX_ID + 1``, so callers refuse it or clamp
    it as they choose. Its length is checked before ``int()``: ``int`` refuses more than
    4,300 digits with a ``ValueError`` (a 500, not the client's 400), and reading a long
    one costs quadratic time. ``isascii``: ``str.isdigit`` also takes "²", which ``int`` refuses.
    """
    if not (raw.isascii() and raw.isdigit()):
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        return MAX_ID + 1
    return min(int(digits), MAX_ID + 1)
