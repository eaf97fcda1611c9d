"""Reading JSON from strangers: one parser for every door, with a depth cap and no NUL.

Every JSON body Kith reads from outside (an inbox POST, an API or OAuth request, a
fetched remote document) goes through ``parse_json``. It refuses, with a reason:
- nesting deeper than ``MAX_DEPTH`` (the standard parser recurses in C and gives up
  near a thousand levels with ``RecursionError``; code walking a document recurses
  too, and no real activity nests more than a dozen levels);
- a NUL character anywhere, in a key or a string, or half of a UTF-16 surrogate pair
  (``"\ud800"``): PostgreSQL's text columns cannot hold either, so an accepted activity
  carrying one would fail on every retry;
- anything that is not JSON.

Hand-written because it is a dozen lines around the standard library's parser, not a
problem a library solves better.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
# In JSON text a NUL can only appear escaped (a raw control character is invalid), so
# this search finds every NUL a document can carry at C speed, before any parsing.
# The escape \u0000 as JSON reads it: after an odd number of
# backslashes. A literal backslash before "u0000" ("\\u0000" in the text) is no NUL.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class JsonRefused(ValueError):
    """A JSON document Kith will not read; the message is short and safe to show."""


def parse_json(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed document, else ``JsonRefused`` (not JSON, nested too deep, or holding a NUL)."""
    try:
        # As json.loads reads bytes: UTF-8, or UTF-16/32 recognised by their first bytes.
        text = data.decode(json.detect_encoding(data)) if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise JsonRefused("not UTF-8") from None
    if "\x00" in text or ("u0000" in text and _ESCAPED_NUL.search(text)):
        raise JsonRefused("contains a NUL character")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise JsonRefused(f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError:
        raise JsonRefused("not UTF-8") from None
    except ValueError:
        raise JsonRefused("not JSON") from None
    if depth_exceeds(doc, max_depth):
        raise JsonRefused(f"nested deeper than {max_depth} levels")
    # In bytes only a \uD800-\uDFFF escape can make a lone surrogate (the decoders refuse an
    # encoded one), and most documents have none at all; text handed in as ``str`` may
    # also carry one as a raw character, so it is always walked.
    escaped = "\\ud" in text or "\\uD" in text
    if (escaped or not isinstance(data, bytes)) and not _encodable(doc):
        raise JsonRefused("contains an unpaired UTF-16 surrogate")
    return doc


def _encodable(doc: Any) -> bool:
    """Whether every key and string encodes as UTF-8 (no lone surrogate), walked without recursion."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return True


def depth_exceeds(doc: Any, max_depth: int) -> bool:
    """Whether lists and objects nest more than ``max_depth`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def has_nul(*values: str | None) -> bool:
    """Whether any of these strings (a path segment, a query value, a form field) holds a NUL."""
    return any(v is not None and "\x00" in v for v in values)
