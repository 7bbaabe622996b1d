"""BIDS JSON sidecars of diffusion images: the timing that ``.bval``/``.bvec`` lack, and
the provenance of simulated data.

Timing fields, in seconds like every BIDS time (and like dipy's ``small_delta`` and
``big_delta``): ``SmallDelta`` (gradient pulse duration delta), ``LargeDelta`` (pulse
separation Delta, onset to onset) and ``EchoTime`` (a BIDS field).  Each is one number
when all volumes share it, else a list with one value per volume.  ``DiffusionWaveform``
names the waveform ("PGSE", "OGSE-cos", "OGSE-sin", "sampled"), ``TimingUnits`` is "s".
mf_dmri's own record (provenance, tissue values, config) is under ``"mf_dmri"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mf_dmri.io.provenance import dumps
from mf_dmri.io.scheme import Scheme

#: sidecar field -> Scheme attribute (both in seconds)
TIMING_FIELDS = {
    "SmallDelta": "pulse_duration",
    "LargeDelta": "pulse_separation",
    "EchoTime": "echo_time",
}


def _compact(values: np.ndarray) -> float | list[float]:
    return float(values[0]) if np.all(values == values[0]) else [float(v) for v in values]


def timing_fields(scheme: Scheme, waveform: str = "PGSE") -> dict[str, Any]:
    """The sidecar's timing fields for ``scheme`` (empty if it has no timing)."""
    fields: dict[str, Any] = {"DiffusionWaveform": waveform}
    if not scheme.has_timing:
        return fields
    for field, attribute in TIMING_FIELDS.items():
        values = getattr(scheme, attribute)
        if values is not None:
            fields[field] = _compact(values)
    fields["TimingUnits"] = "s"
    return fields


def write_sidecar(path: str | os.PathLike, fields: dict[str, Any]) -> Path:
    """Write a sidecar (strict JSON: no NaN or Infinity)."""
    path = Path(path)
    from mf_dmri.io.sealed import atomic_write_text

    atomic_write_text(path, dumps(fields))
    return path


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The fields of a JSON sidecar."""
    path = Path(path)
    try:
        fields = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise ValueError(f"{path} must hold a JSON object (a BIDS sidecar)")
    return fields


def _field(fields: dict[str, Any], name: str, count: int, path) -> np.ndarray | None:
    if name not in fields:
        return None
    values = np.asarray(fields[name], dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.full(count, float(values[0]))
    if values.size != count or not np.isfinite(values).all() or (values <= 0).any():
        raise ValueError(
            f"{path}: {name} must be one positive number [s] or one per volume ({count})"
        )
    if name != "EchoTime" and values.max() > 1.0:
        raise ValueError(
            f"{path}: {name} = {values.max():g} s; BIDS times are in seconds (did you write "
            "milliseconds?)"
        )
    return values


def scheme_with_sidecar_timing(scheme: Scheme, fields: dict[str, Any], path="sidecar") -> Scheme:
    """``scheme`` with the timing of a sidecar; unchanged if the sidecar has none."""
    waveform = fields.get("DiffusionWaveform", "PGSE")
    if waveform != "PGSE":
        raise ValueError(
            f"{path}: DiffusionWaveform is {waveform!r}; only PGSE timings can be read from "
            "a sidecar (give other waveforms in a TOML config)"
        )
    count = scheme.num_rows
    delta = _field(fields, "SmallDelta", count, path)
    separation = _field(fields, "LargeDelta", count, path)
    if delta is None and separation is None:
        return scheme
    if delta is None or separation is None:
        raise ValueError(f"{path}: give both SmallDelta and LargeDelta [s], or neither")
    return scheme.with_timing(delta, separation, _field(fields, "EchoTime", count, path))
