"""MRtrix gradient tables (``.b`` files, ``-grad`` option): one row ``x y z b`` per volume,
the direction in scanner (here: laboratory) coordinates and b in s/mm^2 (Tournier et al.
2019, "MRtrix3", NeuroImage 202, 116137).  Lines starting with ``#`` are comments.  The
conversion s/mm^2 -> s/m^2 happens here; values are written with 17 significant digits,
so a table written and read back is identical to the last bit.  The table has no timing:
give it with :meth:`mf_dmri.io.scheme.Scheme.with_timing`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mf_dmri.io.scheme import Scheme
from mf_dmri.units import s_per_mm2


def read_mrtrix_b(path: str | os.PathLike) -> Scheme:
    """The measurements of an MRtrix ``.b`` file (b-values converted to [s/m^2])."""
    path = Path(path)
    rows = []
    from mf_dmri.io.text import read_text

    for number, line in enumerate(read_text(path, "gradient table").splitlines(), start=1):
        text = line.split("#", 1)[0].replace(",", " ").strip()
        if not text:
            continue
        try:
            values = [float(v) for v in text.split()]
        except ValueError as exc:
            raise ValueError(f"{path}: line {number} is not numbers: {line[:60]!r}") from exc
        if len(values) != 4:
            raise ValueError(
                f"{path}: line {number} has {len(values)} values; an MRtrix gradient table "
                "has 4 per row (x y z b, b in s/mm^2)"
            )
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: the gradient table is empty")
    table = np.asarray(rows, dtype=np.float64)
    if (table[:, 3] < 0).any():
        raise ValueError(f"{path}: negative b-values; b must be >= 0 [s/mm^2]")
    return Scheme(directions=table[:, :3], bvalues=table[:, 3] * s_per_mm2)


def write_mrtrix_b(path: str | os.PathLike, scheme: Scheme) -> Path:
    """Write the rows of ``scheme`` as an MRtrix ``.b`` table (b in s/mm^2)."""
    path = Path(path)
    table = np.column_stack([scheme.directions, scheme.bvalues_si() / s_per_mm2])
    path.write_text("\n".join(" ".join(f"{v:.17g}" for v in row) for row in table) + "\n")
    return path
