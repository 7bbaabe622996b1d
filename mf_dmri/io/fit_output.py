"""Files written by ``mf-dmri fit``: strict JSON summaries, per-voxel CSV tables and NIfTI
parameter maps, every value in the units of docs/vocabulary.md.

A parameter ``radius`` [m] is reported as ``radius_um``; its standard error as
``radius_se_um`` (a quantity ``radius_se`` in the same unit); dimensionless parameters keep
their name (``intra_fraction``, ``intra_fraction_se``).  NaN (no estimate, e.g. a singular
information matrix) becomes ``null`` in JSON, an empty CSV cell and NaN in NIfTI.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from mf_dmri.io.provenance import dumps
from mf_dmri.io.vocabulary import QUANTITIES, UNITS

#: file unit per fitted quantity's SI unit, for parameters the vocabulary does not list
_BY_SI = {"m": "length", "m^2/s": "diffusivity", "s": "time"}


def parameter_unit(name: str, si_unit: str = "") -> tuple[str, float]:
    """(unit suffix, SI per file unit) of fitted parameter ``name``."""
    quantity = QUANTITIES.get(name) or _BY_SI.get(si_unit, "none")
    if quantity == "none":
        return "", 1.0
    unit = next(iter(UNITS[quantity]))
    return unit, UNITS[quantity][unit]


def keys(name: str, si_unit: str = "") -> tuple[str, str, float]:
    """(estimate key, standard-error key, SI per file unit) of parameter ``name``."""
    unit, factor = parameter_unit(name, si_unit)
    if not unit:
        return name, f"{name}_se", 1.0
    return f"{name}_{unit}", f"{name}_se_{unit}", factor


def write_json(path: Path, summary: dict[str, Any]) -> Path:
    """Strict JSON (NaN and infinities become null)."""
    from mf_dmri.io.sealed import atomic_write_text

    return atomic_write_text(path, dumps(summary))


def write_voxel_table(path: Path, columns: dict[str, np.ndarray]) -> Path:
    """One row per voxel; NaN written as an empty cell."""
    if path.suffix != ".csv":
        raise ValueError(f"a per-voxel table is written as .csv, got {path.name!r}")
    names = list(columns)
    from mf_dmri.io.sealed import atomic_write_text

    handle = io.StringIO(newline="")
    writer = csv.writer(handle)
    writer.writerow(names)
    for i in range(len(next(iter(columns.values())))):
        row = []
        for name in names:
            value = float(columns[name][i])
            row.append("" if math.isnan(value) else repr(value))
        writer.writerow(row)
    return atomic_write_text(path, handle.getvalue())


def write_maps(folder: Path, maps: dict[str, np.ndarray], affine: np.ndarray) -> list[Path]:
    """One NIfTI file ``<folder>/<key>.nii.gz`` per map (x, y, z)."""
    from mf_dmri.io.nifti import write_volume

    folder.mkdir(parents=True, exist_ok=True)
    return [write_volume(folder / f"{key}.nii.gz", value, affine) for key, value in maps.items()]


def file_value(name: str, value: float, si_unit: str = "") -> float:
    """An SI value of parameter ``name`` in its file unit."""
    _, _, factor = keys(name, si_unit)
    return value / factor


def file_unit(name: str, si_unit: str = "") -> str:
    """The unit text of parameter ``name`` in files ('-' if dimensionless)."""
    unit, _ = parameter_unit(name, si_unit)
    return unit or "-"
