"""Tables of simulated signals with their provenance (CSV or NPZ).

CSV: the first line is the header (the column names of docs/vocabulary.md) and every
other line is data, so ``pandas.read_csv(path)`` and
``numpy.genfromtxt(path, delimiter=",", names=True)`` read it without options.  The
provenance goes to a JSON sidecar with the same stem (``signals.csv`` ->
``signals.json``), as BIDS does for images.  NPZ: one array per column plus a
``metadata`` entry holding the provenance JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mf_dmri.io.provenance import dumps

TABLE_SUFFIXES = (".csv", ".npz")


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a data file: same folder and stem (``x.nii.gz`` -> ``x.json``)."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii", ".csv", ".npz", ".h5", ".parquet"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_suffix(".json")


def write_table(
    path: str | Path, columns: Mapping[str, np.ndarray], metadata: Mapping[str, Any]
) -> Path:
    """Write equal-length ``columns`` to ``path`` (.csv plus a JSON sidecar, or .npz with
    a 'metadata' entry) and return the path."""
    path = Path(path)
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    lengths = {a.shape[0] for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns must have equal lengths, got {sorted(lengths)}")
    if path.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"output file must end in .csv or .npz, got {path.name!r}")
    if any("," in name for name in arrays):
        raise ValueError(f"column names must not contain commas: {list(arrays)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dumps(metadata)
    if path.suffix == ".npz":
        np.savez(path, metadata=np.array(meta), **arrays)
        return path
    names = list(arrays)
    stacked = np.column_stack([arrays[n] for n in names])
    np.savetxt(path, stacked, delimiter=",", header=",".join(names), comments="", fmt="%.15g")
    sidecar_path(path).write_text(meta)
    return path


def read_table(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a table written by ``write_table``: (columns, metadata)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as data:
            meta = json.loads(str(data["metadata"]))
            return {k: data[k] for k in data.files if k != "metadata"}, meta
    with path.open() as handle:
        names = handle.readline().strip().split(",")
    values = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    sidecar = sidecar_path(path)
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return {n: values[:, i] for i, n in enumerate(names)}, meta
