"""Writing simulated signals with their provenance (CSV or NPZ)."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def provenance(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Package, torch and Python versions plus the config, for recording with results."""
    from mf_dmri import __version__

    return {
        "mf_dmri_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "config": dict(config) if config is not None else None,
    }


def write_table(
    path: str | Path, columns: Mapping[str, np.ndarray], metadata: Mapping[str, Any]
) -> Path:
    """Write equal-length ``columns`` to ``path`` (.csv with '# ' JSON metadata header lines,
    or .npz with a 'metadata' JSON entry) and return the path."""
    path = Path(path)
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    lengths = {a.shape[0] for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns must have equal lengths, got {sorted(lengths)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps(metadata, default=str, sort_keys=True)
    if path.suffix == ".npz":
        np.savez(path, metadata=np.array(meta), **arrays)
    elif path.suffix == ".csv":
        names = list(arrays)
        stacked = np.column_stack([arrays[n] for n in names])
        header = f"metadata: {meta}\n" + ",".join(names)
        np.savetxt(path, stacked, delimiter=",", header=header, comments="# ", fmt="%.10g")
    else:
        raise ValueError(f"output file must end in .csv or .npz, got {path.name!r}")
    return path


def read_table(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a table written by ``write_table``: (columns, metadata)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as data:
            meta = json.loads(str(data["metadata"]))
            return {k: data[k] for k in data.files if k != "metadata"}, meta
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].startswith("# metadata: "):
        raise ValueError(f"{path} was not written by mf_dmri (no metadata header)")
    meta = json.loads(lines[0][len("# metadata: ") :])
    names = lines[1].lstrip("# ").split(",")
    values = np.loadtxt(path, delimiter=",", comments="#", ndmin=2)
    return {n: values[:, i] for i, n in enumerate(names)}, meta
