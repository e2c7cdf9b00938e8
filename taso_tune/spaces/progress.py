"""Progress lines for long loops over a space's configurations: checking or expanding a grid of a
million points takes minutes, and a silent terminal looks like a hang."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Seconds before the first progress line (short loops print nothing), then between lines.
FIRST_AFTER_S = 2.0
EVERY_S = 5.0


def counted(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """Yield ``items``, printing ``what: i of total (p%)`` to stderr every few seconds once the loop
    has run for :data:`FIRST_AFTER_S` seconds."""
    next_at = time.monotonic() + FIRST_AFTER_S
    for done, item in enumerate(items):
        now = time.monotonic()
        if now >= next_at:
            print(f"{what}: {done} of {total} ({done / max(total, 1):.0%})", file=sys.stderr, flush=True)
            next_at = now + EVERY_S
        yield item
