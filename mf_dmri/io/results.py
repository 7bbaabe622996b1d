"""Tables of simulated signals with their provenance (CSV or NPZ).

CSV: the first line is the header (the column names of docs/vocabulary.md) and every
other line is data, so ``pandas.read_csv(path)`` and
``numpy.genfromtxt(path, delimiter=",", names=True)`` read it without options.  The
provenance goes to a JSON sidecar with the same stem (``signals.csv`` ->
``signals.json``), as BIDS does for images.  NPZ: one array per column plus a
``metadata`` entry holding the provenance JSON.

Both are written atomically (mf_dmri.io.sealed) and carry ``content_sha256`` in their
metadata: for CSV the SHA-256 of the CSV file's bytes, for NPZ that of the columns (name,
dtype, shape and bytes, in order).  :func:`read_table` checks it and raises
:class:`~mf_dmri.io.sealed.CorruptArtefactError` on a mismatch (a table cannot be
recomputed from itself: run the simulation again).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mf_dmri.io.provenance import dumps
from mf_dmri.io.sealed import (
    CorruptArtefactError,
    atomic_write_bytes,
    atomic_write_text,
    sha256_bytes,
)

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
    if path.suffix == ".npz":
        meta = dumps({**metadata, "content_sha256": columns_sha256(arrays)})
        buffer = io.BytesIO()
        np.savez(buffer, metadata=np.array(meta), **arrays)
        atomic_write_bytes(path, buffer.getvalue())
        return path
    names = list(arrays)
    stacked = np.column_stack([arrays[n] for n in names])
    text = io.StringIO()
    np.savetxt(text, stacked, delimiter=",", header=",".join(names), comments="", fmt="%.15g")
    data = text.getvalue().encode()
    atomic_write_bytes(path, data)
    atomic_write_text(sidecar_path(path), dumps({**metadata, "content_sha256": sha256_bytes(data)}))
    return path


def columns_sha256(columns: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays: name, dtype, shape and C-order bytes of each, in order."""
    digest = hashlib.sha256()
    for name, values in columns.items():
        values = np.ascontiguousarray(values)
        digest.update(f"{name}|{values.dtype.str}|{values.shape}|".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def _check(path: Path, stored: str | None, actual: str) -> None:
    if stored is not None and stored != actual:
        raise CorruptArtefactError(
            f"{path} is damaged or was edited (its content does not match the SHA-256 in its "
            "metadata); run the simulation again to recreate it"
        )


def read_table(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a table written by ``write_table``: (columns, metadata), checking its content
    SHA-256."""
    path = Path(path)
    try:
        return _read_table(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, CorruptArtefactError):
            raise
        raise CorruptArtefactError(
            f"cannot read table {path} ({exc}); run the simulation again to recreate it"
        ) from exc


def _read_table(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["metadata"]))
            columns = {k: data[k] for k in data.files if k != "metadata"}
        _check(path, meta.get("content_sha256"), columns_sha256(columns))
        return columns, meta
    sidecar = sidecar_path(path)
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    data = path.read_bytes()
    _check(path, meta.get("content_sha256"), sha256_bytes(data))
    lines = data.decode().splitlines()
    names = lines[0].strip().split(",")
    values = np.loadtxt(lines[1:], delimiter=",", ndmin=2)
    return {n: values[:, i] for i, n in enumerate(names)}, meta
