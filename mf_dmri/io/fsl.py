"""FSL gradient tables: ``bvals`` (b-values in s/mm^2) and ``bvecs`` (unit vectors).

FSL writes bvals as one row of N numbers and bvecs as 3 rows of N numbers; N rows of 3
numbers (the MRtrix/transposed layout) are accepted too.  A 3 x 3 bvecs file is read in
the FSL layout (rows are x, y, z).  The conversion s/mm^2 -> s/m^2 happens only here.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.sequences.acquisition import Acquisition
from mf_dmri.sequences.pgse import PGSE
from mf_dmri.units import GAMMA_PROTON, s_per_mm2

#: default accepted deviation of a bvecs norm from 1 (files are often written with 4-6
#: decimals); vectors within it are normalised, others are refused.
FSL_UNIT_TOLERANCE = 1e-2

PathLike = str | os.PathLike


def _read_table(path: PathLike, what: str) -> list[list[float]]:
    """Rows of numbers of a whitespace-separated text file (blank lines skipped)."""
    from mf_dmri.io.text import read_text

    text = read_text(path, what)
    rows = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        tokens = line.replace(",", " ").split()
        if not tokens:
            continue
        try:
            rows.append([float(token) for token in tokens])
        except ValueError as exc:
            raise ValueError(
                f"{what} file {path} line {line_number} does not parse as numbers: "
                f"{line.strip()[:60]!r}; it must hold whitespace-separated numbers only"
            ) from exc
    if not rows:
        raise ValueError(f"{what} file {path} is empty; it must hold the {what} table")
    if any(not math.isfinite(value) for row in rows for value in row):
        raise ValueError(f"{what} file {path} contains NaN or infinite values; fix the file")
    return rows


def read_fsl_bvals(path: PathLike) -> np.ndarray:
    """b-values of an FSL bvals file, shape (N,), in the file's unit [s/mm^2].

    One row of N numbers, or N rows of one number.  Negative values are refused.
    """
    rows = _read_table(path, "bvals")
    if len(rows) == 1:
        values = np.asarray(rows[0], dtype=np.float64)
    elif all(len(row) == 1 for row in rows):
        values = np.asarray([row[0] for row in rows], dtype=np.float64)
    else:
        raise ValueError(
            f"bvals file {path} has {len(rows)} rows of several numbers; it must be one row "
            "(FSL layout) or one column of b-values"
        )
    if (values < 0).any():
        raise ValueError(f"bvals file {path} has negative b-values; b-values must be >= 0")
    return values


def read_fsl_bvecs(path: PathLike) -> np.ndarray:
    """Gradient directions of an FSL bvecs file as given, shape (N, 3) [-] (not normalised).

    Accepts 3 rows of N numbers (FSL) or N rows of 3 numbers; a 3 x 3 file is read as FSL.
    """
    rows = _read_table(path, "bvecs")
    lengths = {len(row) for row in rows}
    if len(lengths) != 1:
        raise ValueError(
            f"bvecs file {path} has rows of different lengths {sorted(lengths)}; it must be "
            "3 rows of N numbers (FSL) or N rows of 3 numbers"
        )
    table = np.asarray(rows, dtype=np.float64)
    if table.shape[0] == 3:
        return table.T.copy()
    if table.shape[1] == 3:
        return table
    raise ValueError(f"bvecs file {path} has shape {table.shape}; it must be 3 x N (FSL) or N x 3")


def _normalised_directions(
    bvalues: np.ndarray, vectors: np.ndarray, tolerance: float, path: PathLike
) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1)
    bad = np.abs(norms - 1.0) > tolerance
    bad &= ~((bvalues == 0) & (norms == 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"bvecs file {path} column {row + 1} has norm {norms[row]:.6g} (b = "
            f"{bvalues[row]:g} s/mm^2); directions must be unit vectors within {tolerance:g} "
            "(zero vectors only for b = 0): fix the file or set that b-value to 0"
        )
    safe = np.where(norms > 0, norms, 1.0)
    return vectors / safe[:, None]


def read_fsl_scheme(
    bvals_path: PathLike, bvecs_path: PathLike, *, unit_tolerance: float = FSL_UNIT_TOLERANCE
) -> tuple[torch.Tensor, torch.Tensor]:
    """b-values (N,) [s/m^2] and unit directions (N, 3) [-] of an FSL bvals/bvecs pair.

    Vectors within ``unit_tolerance`` of unit norm are normalised; b = 0 rows may have zero
    vectors.  Any other vector, or a count mismatch, raises ValueError.
    """
    bvalues = read_fsl_bvals(bvals_path)
    vectors = read_fsl_bvecs(bvecs_path)
    if vectors.shape[0] != bvalues.shape[0]:
        raise ValueError(
            f"{bvals_path} has {bvalues.shape[0]} b-values but {bvecs_path} has "
            f"{vectors.shape[0]} vectors; the files must describe the same measurements"
        )
    directions = _normalised_directions(bvalues, vectors, unit_tolerance, bvecs_path)
    return (
        torch.as_tensor(bvalues * s_per_mm2, dtype=DTYPE),
        torch.as_tensor(directions, dtype=DTYPE),
    )


def load_fsl_acquisition(
    bvals_path: PathLike,
    bvecs_path: PathLike,
    pulse_duration,
    pulse_separation,
    *,
    gyromagnetic_ratio: float = GAMMA_PROTON,
    echo_time=None,
    unit_tolerance: float = FSL_UNIT_TOLERANCE,
) -> Acquisition:
    """PGSE acquisition from an FSL bvals/bvecs pair.

    Args:
        bvals_path, bvecs_path: FSL files (b-values in s/mm^2).
        pulse_duration: PGSE lobe duration delta [s].
        pulse_separation: PGSE lobe separation Delta [s].
        gyromagnetic_ratio: [rad/(s T)].
        echo_time: echo time [s] or None (Delta + delta).
        unit_tolerance: accepted deviation of bvecs norms from 1 [-].
    """
    bvalues, directions = read_fsl_scheme(bvals_path, bvecs_path, unit_tolerance=unit_tolerance)
    waveform = PGSE(pulse_duration, pulse_separation)
    return Acquisition.from_bvalues(
        waveform,
        bvalues,
        directions,
        gyromagnetic_ratio=gyromagnetic_ratio,
        echo_time=echo_time,
    )


def write_fsl_scheme(bvals_path: PathLike, bvecs_path: PathLike, bvalues, directions) -> None:
    """Write b-values (N,) [s/m^2] and directions (N, 3) [-] as FSL bvals (s/mm^2, one row)
    and bvecs (3 rows)."""
    bvalues = np.asarray(torch.as_tensor(bvalues, dtype=DTYPE).detach().cpu(), np.float64)
    directions = np.asarray(torch.as_tensor(directions, dtype=DTYPE).detach().cpu(), np.float64)
    if bvalues.ndim != 1 or directions.shape != (bvalues.shape[0], 3):
        raise ValueError(
            f"need bvalues (N,) and directions (N, 3), got {bvalues.shape} and {directions.shape}"
        )
    if not (np.isfinite(bvalues).all() and np.isfinite(directions).all()):
        raise ValueError("bvalues and directions must be finite")
    from mf_dmri.io.sealed import atomic_write_text

    atomic_write_text(bvals_path, " ".join(f"{b:.12g}" for b in bvalues / s_per_mm2) + "\n")
    lines = [" ".join(f"{value:.12g}" for value in column) for column in directions.T]
    atomic_write_text(bvecs_path, "\n".join(lines) + "\n")


def save_fsl_acquisition(
    acquisition: Acquisition, bvals_path: PathLike, bvecs_path: PathLike
) -> None:
    """Write a one-channel acquisition's b-values and directions as FSL bvals/bvecs.

    The waveform timings are not stored by FSL files; keep them separately.
    """
    if acquisition.num_channels != 1:
        raise ValueError(
            f"FSL files describe one direction per measurement; this acquisition has "
            f"{acquisition.num_channels} channels"
        )
    write_fsl_scheme(bvals_path, bvecs_path, acquisition.bvalues(), acquisition.directions[:, 0, :])
