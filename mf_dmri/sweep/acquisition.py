"""Acquisition blocks -> the measurement table and the ``GradientPieces`` of each timing.

Measurements sharing a timing (pulse duration, separation, frequency) share their piece
durations, so each timing becomes one ``GradientPieces`` and one batched signal call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.sweep.spec import AcquisitionBlock
from mf_dmri.units import GAMMA_PROTON

#: Columns of the measurement table (SI): see ``MeasurementTable``.
MEASUREMENT_COLUMNS = (
    "block",
    "timing",
    "pulse_duration",
    "pulse_separation",
    "frequency",
    "bvalue",
    "direction_x",
    "direction_y",
    "direction_z",
)


def hemisphere_directions(count: int) -> np.ndarray:
    """``count`` unit vectors spread over the upper hemisphere (Fibonacci spiral) [-]."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of directions must be a positive integer, got {count!r}")
    index = np.arange(count) + 0.5
    z = 1.0 - index / count  # uniform in z on (0, 1]: uniform area on the hemisphere
    azimuth = math.pi * (3.0 - math.sqrt(5.0)) * index
    radius = np.sqrt(1.0 - z * z)
    return np.stack([radius * np.cos(azimuth), radius * np.sin(azimuth), z], axis=1)


@dataclass(frozen=True)
class Timing:
    """One timing of one block and the measurement indices that use it."""

    sequence: str
    pulse_duration: float
    pulse_separation: float
    frequency: float
    indices: np.ndarray


@dataclass(frozen=True)
class MeasurementTable:
    """The sweep's measurements: SI columns (M,) named as in ``MEASUREMENT_COLUMNS`` plus
    their grouping by timing."""

    columns: dict[str, np.ndarray]
    timings: tuple[Timing, ...]

    @property
    def count(self) -> int:
        return int(self.columns["bvalue"].size)


def measurement_table(blocks: tuple[AcquisitionBlock, ...]) -> MeasurementTable:
    """Every block's timings x b-values x directions (b = 0 once per timing), in order."""
    rows: list[tuple] = []
    timings: list[Timing] = []
    for block_index, block in enumerate(blocks):
        for duration, separation, frequency in block.timings():
            start = len(rows)
            for bvalue in block.bvalues:
                directions = block.directions if bvalue > 0 else block.directions[:1]
                for direction in directions:
                    rows.append(
                        (block_index, len(timings), duration, separation, frequency, bvalue)
                        + tuple(direction)
                    )
            timings.append(
                Timing(block.sequence, duration, separation, frequency, np.arange(start, len(rows)))
            )
    data = np.asarray(rows, dtype=float).reshape(-1, len(MEASUREMENT_COLUMNS))
    columns = {name: data[:, i] for i, name in enumerate(MEASUREMENT_COLUMNS)}
    for name in ("block", "timing"):
        columns[name] = columns[name].astype(np.int64)
    return MeasurementTable(columns, tuple(timings))


def timing_pieces(table: MeasurementTable, timing: Timing) -> GradientPieces:
    """The ``GradientPieces`` of the measurements of one timing."""
    columns = table.columns
    bvalues = columns["bvalue"][timing.indices]
    directions = np.stack([columns[f"direction_{a}"][timing.indices] for a in "xyz"], axis=1)
    if timing.sequence == "pgse":
        return pgse_pieces(timing.pulse_duration, timing.pulse_separation, bvalues, directions)
    return _ogse_pieces(timing, bvalues, directions)


def pgse_pieces(
    pulse_duration: float, pulse_separation: float, bvalues: np.ndarray, directions: np.ndarray
) -> GradientPieces:
    """Rectangular PGSE as three pieces (pulse, gap, refocused pulse).

    Args:
        pulse_duration: delta [s].
        pulse_separation: Delta [s], >= delta.
        bvalues: (M,) b-values [s/m^2]; the amplitude follows from Stejskal-Tanner,
            b = gamma^2 G^2 delta^2 (Delta - delta/3).
        directions: (M, 3) unit gradient directions [-].
    """
    amplitude = np.sqrt(
        np.asarray(bvalues, dtype=float)
        / (GAMMA_PROTON**2 * pulse_duration**2 * (pulse_separation - pulse_duration / 3.0))
    )
    gradient = torch.as_tensor(amplitude[:, None] * directions, dtype=DTYPE)
    gradients = torch.stack([gradient, torch.zeros_like(gradient), -gradient], dim=1)
    durations = torch.tensor(
        [pulse_duration, pulse_separation - pulse_duration, pulse_duration], dtype=DTYPE
    )
    return GradientPieces(durations, gradients)


def _ogse_pieces(timing: Timing, bvalues: np.ndarray, directions: np.ndarray) -> GradientPieces:
    try:
        from mf_dmri.sequences import OGSE, Acquisition  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ValueError(
            "OGSE acquisitions need mf_dmri.sequences.OGSE, which this installation lacks; "
            "use sequence = 'pgse' or update mf_dmri"
        ) from exc
    waveform = OGSE(timing.pulse_duration, timing.pulse_separation, timing.frequency)
    acquisition = Acquisition.from_bvalues(waveform, directions, bvalues)
    return acquisition.pieces()
