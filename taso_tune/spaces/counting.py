"""Progress lines for long loops over a space's configurations: checking or expanding a grid of a
million points takes minutes, and a silent terminal looks like a hang. Ctrl-C stops such a loop
at its next item."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds before the first progress line (short loops print nothing), then between lines.
FIRST_AFTER_S = 2.0
EVERY_S = 5.0


def counted(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """Yield ``items``, printing ``what: i of total (p%)`` to stderr every few seconds once the loop
    has run for :data:`FIRST_AFTER_S` seconds.

    A SIGINT during the loop raises :class:`KeyboardInterrupt` at the next item. (Python's own
    handler raises it wherever the main thread is; landing in a finalizer of the loop's many
    short-lived objects, it would be printed as ignored and the loop would go on.)"""
    received: list[int] = []
    previous = _note_sigint(received)
    try:
        next_at = time.monotonic() + FIRST_AFTER_S
        for done, item in enumerate(items):
            if received:
                raise KeyboardInterrupt("SIGINT")
            now = time.monotonic()
            if now >= next_at:
                print(
                    f"{what}: {done} of {total} ({done / max(total, 1):.0%})",
                    file=sys.stderr,
                    flush=True,
                )
                next_at = now + EVERY_S
            yield item
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _note_sigint(received: list[int]) -> Any:
    """Make SIGINT append to ``received`` (main thread only, where Python allows a handler, and only
    over Python's default handler); the handler it replaced, or None when it replaced none."""
    if threading.current_thread() is not threading.main_thread():
        return None
    current = signal.getsignal(signal.SIGINT)
    if current is not signal.default_int_handler:
        return None  # a sweep's own handler (or an ignored SIGINT) stays in charge
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    return current
