"""Reading a moderator's command from the text of a reply: pure, no I/O.

A Mastodon reply starts with the mentions of the people it answers (``@haven`` or
``@haven@groups.example``); the command is the first word after them, then, in this order
and each optional:

- the item's number in the message answered (``2`` or ``#2``): a bare number right after
  the command word is always read as the item's number, never as the start of a reason;
- for ``ban``, the days it lasts (``7d``; none: for good);
- a reason, the rest of the text (for ``ban``, a last word ``purge`` also removes the
  banned member's content and is not part of the reason).

``remove 2 spam`` removes item 2 with the reason "spam"; ``ban 3 7d flooding purge``
bans item 3's author for seven days, removing their posts. The grammar is hand-written:
it is eight words and a number, which no parsing library would make shorter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERBS = ("approve", "reject", "remove", "restore", "lock", "ban", "resolve", "dismiss")
MAX_REASON = 500
MAX_DAYS = 3650
MAX_REF = 999

_MENTION = re.compile(r"^@[^\s@]+(?:@[^\s@]+)?$")
_REF = re.compile(r"^#?(\d{1,6})$")
_DAYS = re.compile(r"^(\d{1,6})d$", re.IGNORECASE)


class CommandError(ValueError):
    """The text holds no command we can read; the message says why, for the moderator."""


@dataclass(frozen=True)
class Command:
    """A parsed command: the verb, which item (None: the message's only one), and its details."""

    verb: str
    ref: int | None = None
    reason: str = ""
    days: int | None = None  # ban only; None: for good
    purge: bool = False  # ban only: remove their content too

    def describe(self) -> str:
        """The command as a moderator would type it, normalised (for the log of replies)."""
        parts = [self.verb]
        if self.ref is not None:
            parts.append(f"#{self.ref}")
        if self.days is not None:
            parts.append(f"{self.days}d")
        if self.reason:
            parts.append(self.reason)
        if self.purge:
            parts.append("purge")
        return " ".join(parts)


def strip_mentions(text: str) -> list[str]:
    """The words of ``text`` after the mentions it starts with."""
    words = text.split()
    while words and _MENTION.match(words[0]):
        words.pop(0)
    return words


def parse_command(text: str) -> Command:
    """The command in a reply's plain text (mentions first are skipped); ``CommandError`` when there is none."""
    words = strip_mentions(text)
    if not words:
        raise CommandError(f"the reply holds no command; answer with one of: {', '.join(VERBS)}")
    verb = words.pop(0).lower().rstrip(".,:;!")
    if verb not in VERBS:
        raise CommandError(f"{verb[:40]!r} is not a command; answer with one of: {', '.join(VERBS)}")
    ref = None
    if words and (match := _REF.match(words[0])):
        ref = int(match.group(1))
        if not 1 <= ref <= MAX_REF:
            raise CommandError(f"there is no item {ref}")
        words.pop(0)
    days = None
    purge = False
    if verb == "ban":
        if words and (match := _DAYS.match(words[0])):
            days = int(match.group(1))
            if not 1 <= days <= MAX_DAYS:
                raise CommandError(f"a ban lasts 1 to {MAX_DAYS} days (or, without a number of days, for good)")
            words.pop(0)
        if words and words[-1].lower().rstrip(".!") == "purge":
            purge = True
            words.pop()
    reason = " ".join(words)[:MAX_REASON]
    return Command(verb, ref, reason, days, purge)
