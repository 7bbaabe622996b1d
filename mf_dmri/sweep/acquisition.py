"""Acquisition blocks -> the measurement table and the ``GradientPieces`` of each timing.

Measurements sharing a timing (sequence, pulse duration, separation, OGSE periods) share
their piece durations, so each timing becomes one ``mf_dmri.sequences.Acquisition`` (built
from b-values and directions) and one batched signal call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.plausibility import CHECKED, Plausibility
from mf_dmri.sequences import OGSE, PGSE, Acquisition, fibonacci_sphere
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.sweep.spec import AcquisitionBlock

#: Columns of the measurement table (SI; ``sequence``: 0 for PGSE, 1 for OGSE; ``frequency``
#: = num_periods / pulse_duration for OGSE, 0 for PGSE).
MEASUREMENT_COLUMNS = (
    "block",
    "timing",
    "sequence",
    "pulse_duration",
    "pulse_separation",
    "num_periods",
    "frequency",
    "bvalue",
    "direction_x",
    "direction_y",
    "direction_z",
)
SEQUENCE_CODES = {"pgse": 0, "ogse": 1}


def hemisphere_directions(count: int) -> np.ndarray:
    """``count`` unit vectors on the upper hemisphere (Fibonacci spiral) [-]."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"the number of directions must be a positive integer, got {count!r}")
    return fibonacci_sphere(count, hemisphere=True).numpy()


@dataclass(frozen=True)
class Timing:
    """One timing of one block and the measurement indices that use it."""

    sequence: str
    pulse_duration: float
    pulse_separation: float
    num_periods: int
    kind: str
    indices: np.ndarray


@dataclass(frozen=True)
class MeasurementTable:
    """The sweep's measurements: SI columns (M,) named as in ``MEASUREMENT_COLUMNS`` plus
    their grouping by timing; ``plausibility``: the override of the range checks of the
    waveforms and gradients built from them."""

    columns: dict[str, np.ndarray]
    timings: tuple[Timing, ...]
    plausibility: Plausibility = CHECKED

    @property
    def count(self) -> int:
        return int(self.columns["bvalue"].size)


def measurement_table(
    blocks: tuple[AcquisitionBlock, ...], plausibility: Plausibility = CHECKED
) -> MeasurementTable:
    """Every block's timings x b-values x directions (b = 0 once per timing), in order;
    ``plausibility``: the override kept for :func:`timing_acquisition`."""
    rows: list[tuple] = []
    timings: list[Timing] = []
    for block_index, block in enumerate(blocks):
        code = SEQUENCE_CODES[block.sequence]
        for duration, separation, periods in block.timings():
            start = len(rows)
            frequency = periods / duration if block.sequence == "ogse" else 0.0
            for bvalue in block.bvalues:
                directions = block.directions if bvalue > 0 else block.directions[:1]
                for direction in directions:
                    rows.append(
                        (block_index, len(timings), code, duration, separation, periods)
                        + (frequency, bvalue)
                        + tuple(direction)
                    )
            timings.append(
                Timing(
                    block.sequence,
                    duration,
                    separation,
                    periods,
                    block.kind,
                    np.arange(start, len(rows)),
                )
            )
    data = np.asarray(rows, dtype=float).reshape(-1, len(MEASUREMENT_COLUMNS))
    columns = {name: data[:, i] for i, name in enumerate(MEASUREMENT_COLUMNS)}
    for name in ("block", "timing", "sequence", "num_periods"):
        columns[name] = columns[name].astype(np.int64)
    return MeasurementTable(columns, tuple(timings), plausibility)


def timing_acquisition(table: MeasurementTable, timing: Timing) -> Acquisition:
    """The ``mf_dmri.sequences.Acquisition`` of the measurements of one timing."""
    columns = table.columns
    bvalues = torch.as_tensor(columns["bvalue"][timing.indices], dtype=DTYPE)
    directions = torch.as_tensor(
        np.stack([columns[f"direction_{a}"][timing.indices] for a in "xyz"], axis=1),
        dtype=DTYPE,
    )
    checks = table.plausibility
    if timing.sequence == "pgse":
        waveform = PGSE(timing.pulse_duration, timing.pulse_separation, plausibility=checks)
    else:
        waveform = OGSE(
            timing.pulse_duration,
            timing.pulse_separation,
            timing.num_periods,
            timing.kind,
            plausibility=checks,
        )
    return Acquisition.from_bvalues(waveform, bvalues, directions, plausibility=checks)


def timing_pieces(table: MeasurementTable, timing: Timing) -> GradientPieces:
    """The ``GradientPieces`` of one timing (OGSE with the waveform's default pieces)."""
    return timing_acquisition(table, timing).pieces()
