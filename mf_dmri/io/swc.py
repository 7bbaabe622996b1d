"""Reading SWC morphology files (NeuroMorpho.Org, navis, NEURON).

An SWC file has one node per line, ``id type x y z radius parent`` (parent -1 for a
root), ``#`` starting a comment (Cannon et al. 1998; the NeuroMorpho.Org specification).
Coordinates and radii are in the file's unit, stated by the caller: ``unit`` is the length
of one file unit in metres (``mf_dmri.units.um`` for NeuroMorpho files, ``8e-9`` for
the navis example skeletons, whose unit is "8 nanometer").  Nothing is guessed: radii are
kept as read (zero radii at tips are common; a negative radius is refused), ids need not
be consecutive but must be unique, with every parent present.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mf_dmri.geometry.morphology import Morphology


class SwcFileError(ValueError):
    """An SWC file could not be read."""


def _rows(path: Path) -> np.ndarray:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.replace(",", " ").split()
        if len(fields) < 7:
            raise SwcFileError(
                f"{path}:{number}: expected 7 columns (id type x y z radius parent), got "
                f"{len(fields)}: {line.strip()!r}"
            )
        try:
            rows.append([float(value) for value in fields[:7]])
        except ValueError as exc:
            raise SwcFileError(f"{path}:{number}: not a number in {line.strip()!r}") from exc
    if not rows:
        raise SwcFileError(f"{path}: no nodes (only comments or blank lines)")
    return np.array(rows)


def load_swc(path: str | Path, unit: float) -> Morphology:
    """Read an SWC file into a :class:`Morphology` [m].  unit: metres per file unit [m]
    (e.g. ``mf_dmri.units.um``).  Radii are kept as read (zero radii included); a floor is
    an explicit, reported step: ``simplify_morphology(..., min_radius=...)``."""
    value = float(unit)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"unit must be a positive number of metres per file unit [m], got {unit!r}; "
            "e.g. mf_dmri.units.um for a NeuroMorpho file"
        )
    path = Path(path)
    if not path.is_file():
        raise SwcFileError(f"{path}: no such file")
    rows = _rows(path)
    ids = rows[:, 0].astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise SwcFileError(f"{path}: node ids are not unique")
    index = {node: k for k, node in enumerate(ids)}
    parent_ids = rows[:, 6].astype(np.int64)
    missing = [p for p in parent_ids if p >= 0 and p not in index]
    if missing:
        raise SwcFileError(f"{path}: parent id {missing[0]} is not a node id in the file")
    parents = np.array([index[p] if p >= 0 else -1 for p in parent_ids], dtype=np.int64)
    negative = np.flatnonzero(rows[:, 5] < 0)
    if len(negative):
        radii = rows[negative, 5]
        raise SwcFileError(
            f"{path}: {len(negative)} node(s) have a negative radius (first node id "
            f"{ids[negative[0]]}, radii {radii.min():g}..{radii.max():g} in the file's "
            "unit); a radius is a length >= 0: correct those rows of the file (if the sign "
            "is an export error, the intended radii are their absolute values) and load it "
            "again"
        )
    return Morphology(
        rows[:, 2:5] * value, rows[:, 5] * value, parents, rows[:, 1].astype(np.int64)
    )
