"""Measured (or simulated) signals as tables, for ``mf-dmri fit``.

A CSV with one header line and one row per measurement, columns named as in
docs/vocabulary.md: ``b_s_per_mm2``, ``direction_x``, ``direction_y``, ``direction_z``,
``signal`` and optionally ``pulse_duration_ms``, ``pulse_separation_ms``, ``echo_time_ms``
(per-row timing) and ``voxel`` (several voxels, each with the same measurements in the same
order: the output of ``mf-dmri simulate`` for a phantom).  Other columns are ignored.  The
old names ``b``, ``gx``, ``gy``, ``gz``, ``delta_ms``, ``Delta_ms``, ``signal_abs`` are
accepted with a deprecation warning.  Or FSL bvals/bvecs with a text file of signals.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from mf_dmri.io.fsl import read_fsl_bvals, read_fsl_bvecs
from mf_dmri.io.scheme import Scheme
from mf_dmri.io.vocabulary import COLUMN_ALIASES, resolve_alias
from mf_dmri.units import ms, s_per_mm2

REQUIRED = ("b_s_per_mm2", "direction_x", "direction_y", "direction_z", "signal")
TIMING = ("pulse_duration_ms", "pulse_separation_ms", "echo_time_ms")


def _columns(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
    if not rows:
        raise ValueError(f"{path} is empty; it needs a header with {', '.join(REQUIRED)}")
    where = f"{path} header"
    header = [resolve_alias(name.strip(), where, COLUMN_ALIASES) for name in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; it needs {', '.join(REQUIRED)}")
    wanted = [i for i, name in enumerate(header) if name in REQUIRED + TIMING + ("voxel",)]
    values = {header[i]: [] for i in wanted}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path} line {number} has {len(row)} fields, expected {len(header)}")
        for i in wanted:
            try:
                values[header[i]].append(float(row[i]) if row[i].strip() else np.nan)
            except ValueError as exc:
                raise ValueError(
                    f"{path} line {number}: {header[i]}={row[i]!r} is not a number"
                ) from exc
    columns = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    if columns["signal"].size == 0:
        raise ValueError(f"{path} has a header but no rows")
    return columns


def _scheme(columns: dict[str, np.ndarray], rows: np.ndarray, where: str) -> Scheme:
    directions = np.stack([columns[f"direction_{a}"][rows] for a in "xyz"], axis=1)
    bvalues = columns["b_s_per_mm2"][rows]
    for name in ("b_s_per_mm2",) + tuple(f"direction_{a}" for a in "xyz"):
        if not np.isfinite(columns[name][rows]).all():
            raise ValueError(f"{where}: column {name} has empty, NaN or infinite values")
    directions = np.where((bvalues > 0)[:, None], directions, 0.0)
    scheme = Scheme(directions=directions, bvalues=bvalues * s_per_mm2)
    given = [c for c in TIMING[:2] if c in columns]
    if not given:
        return scheme
    if len(given) == 1:
        raise ValueError(f"{where}: give both pulse_duration_ms and pulse_separation_ms columns")
    timing = [columns[c][rows] for c in TIMING if c in columns]
    if not all(np.isfinite(t).all() for t in timing):
        raise ValueError(
            f"{where}: the timing columns have empty values (a non-PGSE waveform?); the fit "
            "models need PGSE rows"
        )
    echo = columns["echo_time_ms"][rows] * ms if "echo_time_ms" in columns else None
    return scheme.with_timing(timing[0] * ms, timing[1] * ms, echo)


def read_measurement_table(path: str | os.PathLike) -> tuple[Scheme, np.ndarray]:
    """(scheme of the measurements, signals (V, M)) of a CSV table (see the module
    docstring); one voxel unless the table has a ``voxel`` column."""
    path = Path(path)
    columns = _columns(path)
    if "voxel" not in columns:
        rows = np.arange(columns["signal"].size)
        return _scheme(columns, rows, str(path)), columns["signal"][None, :]
    voxels = columns["voxel"]
    labels = np.unique(voxels)
    first = np.flatnonzero(voxels == labels[0])
    scheme = _scheme(columns, first, str(path))
    signals = np.empty((labels.size, first.size))
    for index, label in enumerate(labels):
        rows = np.flatnonzero(voxels == label)
        same = rows.size == first.size and all(
            np.array_equal(columns[c][rows], columns[c][first], equal_nan=True)
            for c in REQUIRED[:4] + tuple(t for t in TIMING if t in columns)
        )
        if not same:
            raise ValueError(
                f"{path}: voxel {label:g} does not list the same measurements as voxel "
                f"{labels[0]:g}; every voxel needs the same rows in the same order"
            )
        signals[index] = columns["signal"][rows]
    return scheme, signals


def read_fsl_measurements(bvals, bvecs, signal) -> tuple[Scheme, np.ndarray]:
    """(scheme, signals (1, M)) from FSL bvals/bvecs and a text file of signals."""
    values, vectors = read_fsl_bvals(bvals), read_fsl_bvecs(bvecs)
    data = np.loadtxt(signal, dtype=np.float64, ndmin=1).reshape(-1)
    if not values.size == vectors.shape[0] == data.size:
        raise ValueError(
            f"{values.size} b-values, {vectors.shape[0]} bvecs and {data.size} signals: "
            "the three files must list the same measurements"
        )
    vectors = np.where((values > 0)[:, None], vectors, 0.0)
    return Scheme(directions=vectors, bvalues=values * s_per_mm2), data[None, :]
