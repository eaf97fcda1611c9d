"""Typed rows: database rows turned into the frozen dataclasses the owning modules return.

Each table's owner declares a frozen dataclass whose fields are named as the columns it
needs; ``record(Cls, row)`` builds one from a result row by those names (extra columns
of a wider query are left out). Code above storage then sees ``Group``, ``Post``,
``RemoteActor`` ... with their types, never an untyped ``Row``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@cache
def field_names(cls: type[Any]) -> tuple[str, ...]:
    """The dataclass's field names, in order (cached: read on every row)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def record(cls: type[T], row: Any) -> T:
    """``cls`` built by field name from ``row``: a SQLAlchemy ``Row``, a mapping, or another record."""
    if isinstance(row, dict):
        return cls(*[row[name] for name in field_names(cls)])
    return cls(*[getattr(row, name) for name in field_names(cls)])


def record_or_none(cls: type[T], row: Any | None) -> T | None:
    """``record(cls, row)``, or None when there is no row."""
    return None if row is None else record(cls, row)


CHUNK = 500  # values per IN (...): well within SQLite's and PostgreSQL's parameter limits


def chunked(values: Iterable[T], size: int = CHUNK) -> list[list[T]]:
    """Distinct ``values`` (first seen first) in lists of at most ``size``, for ``IN (...)`` clauses."""
    items = list(dict.fromkeys(values))
    return [items[i : i + size] for i in range(0, len(items), size)]
