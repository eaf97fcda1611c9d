"""Typed rows: database rows turned into the frozen dataclasses the owning modules return.

Each table's owner declares a frozen dataclass whose fields are named as the columns it
needs; ``record(Cls, row)`` builds one from a result row by those names (extra columns
of a wider query are left out). Code above storage then sees ``Group``, ``Post``,
``RemoteActor`` ... with their types, never an untyped ``Row``.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@cache
def field_names(cls: type[Any]) -> tuple[str, ...]:
    """The dataclass's field names, in order (cached: read on every row)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def record(cls: type[T], row: Any) -> T:
    """``cls`` built from ``row`` (a SQLAlchemy ``Row`` or any mapping) by field name."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return cls(*[mapping[name] for name in field_names(cls)])


def record_or_none(cls: type[T], row: Any | None) -> T | None:
    """``record(cls, row)``, or None when there is no row."""
    return None if row is None else record(cls, row)
