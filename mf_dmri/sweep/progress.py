"""Progress of a sweep: rows done, rate and ETA, reported to a callback and to logging."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressUpdate:
    """State after a chunk: rows and chunks done (this run and in total), measurements
    per row, seconds elapsed in this run, and the rate [rows/s] and ETA [s] of this run."""

    rows_done: int
    rows_total: int
    chunks_done: int
    chunks_total: int
    measurements: int
    elapsed: float
    rows_this_run: int

    @property
    def rate(self) -> float:
        """Rows per second in this run (0 before the first chunk)."""
        return self.rows_this_run / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def signals_per_second(self) -> float:
        return self.rate * self.measurements

    @property
    def eta(self) -> float:
        """Seconds left at the current rate (inf before the first chunk)."""
        remaining = self.rows_total - self.rows_done
        return remaining / self.rate if self.rate > 0 else (0.0 if remaining == 0 else float("inf"))


ProgressCallback = Callable[[ProgressUpdate], None]


class ProgressTracker:
    """Counts finished chunks; calls ``callback`` after each and logs at most every
    ``log_every`` seconds."""

    def __init__(
        self,
        rows_total: int,
        chunks_total: int,
        measurements: int,
        *,
        rows_done: int = 0,
        chunks_done: int = 0,
        callback: ProgressCallback | None = None,
        log_every: float = 10.0,
    ) -> None:
        self.rows_total, self.chunks_total, self.measurements = (
            rows_total,
            chunks_total,
            measurements,
        )
        self.rows_done, self.chunks_done = rows_done, chunks_done
        self.rows_this_run = 0
        self.callback, self.log_every = callback, log_every
        self.start = time.perf_counter()
        self._last_log = self.start

    def update(self, rows: int) -> ProgressUpdate:
        self.rows_done += rows
        self.rows_this_run += rows
        self.chunks_done += 1
        now = time.perf_counter()
        state = ProgressUpdate(
            self.rows_done,
            self.rows_total,
            self.chunks_done,
            self.chunks_total,
            self.measurements,
            now - self.start,
            self.rows_this_run,
        )
        if now - self._last_log >= self.log_every or state.rows_done == state.rows_total:
            self._last_log = now
            logger.info(
                "sweep: %d/%d rows (%d/%d chunks), %.1f rows/s, ETA %.0f s",
                state.rows_done,
                state.rows_total,
                state.chunks_done,
                state.chunks_total,
                state.rate,
                state.eta,
            )
        if self.callback is not None:
            self.callback(state)
        return state
