"""The progress bar ``taso-tune train`` draws on a terminal while a long epoch runs.

It counts the epoch's training batches as the loop takes them (a wrapper around the run's batch
iterator: the training loop itself knows nothing of it) and appears only once an epoch has run
``delay`` seconds, so short epochs print just their line. Not on a terminal, nothing is drawn: the
output is one plain line per epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, TextIO

#: Seconds an epoch runs before its bar appears.
DEFAULT_DELAY_S = 3.0
BAR_WIDTH = 24


class EpochBar:
    """Draws ``epoch E/N [#####.....] b/B batches  12s, ~30s left`` on one terminal line."""

    def __init__(
        self,
        stream: TextIO,
        total_epochs: int,
        *,
        delay: float = DEFAULT_DELAY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total_epochs = total_epochs
        self.delay = delay
        self.clock = clock
        self.drawn = 0  # characters on the line now

    def batches(self, batches: Iterable[Any] | Sized, epoch: int) -> Iterator[Any]:
        """Yield ``batches``, redrawing the bar after each one the loop has trained on."""
        total = len(batches)  # type: ignore[arg-type]
        start = self.clock()
        for done, batch in enumerate(batches, 1):  # type: ignore[arg-type]
            yield batch
            elapsed = self.clock() - start
            if elapsed >= self.delay:
                self.draw(epoch, done, total, elapsed)
        self.clear()

    def draw(self, epoch: int, done: int, total: int, elapsed: float) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        left = elapsed / done * (total - done)
        text = (
            f"epoch {epoch}/{self.total_epochs} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
            f"{done}/{total} batches  {elapsed:.0f}s, ~{left:.0f}s left"
        )
        self.stream.write("\r" + text.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(text)

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


class BarredBatches:
    """A run's training batches, counted by an :class:`EpochBar` (``len`` as the batches')."""

    def __init__(self, batches: Any, bar: EpochBar, epoch: Callable[[], int]) -> None:
        self.inner = batches
        self.bar = bar
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[Any]:
        return self.bar.batches(self.inner, self.epoch())


def attach(run: Any, stream: TextIO) -> None:
    """Show an :class:`EpochBar` for ``run``'s epochs on ``stream`` when it is a terminal."""
    if stream.isatty():
        bar = EpochBar(stream, run.config.epochs)
        run.train_batches = BarredBatches(run.train_batches, bar, lambda: run.epoch + 1)
