"""Camino scheme files (also read by MC/DC and other Monte-Carlo simulators).

Two layouts, each a ``VERSION:`` header line followed by one row per measurement, SI
units throughout (Cook et al. 2006, "Camino: open-source diffusion-MRI reconstruction and
processing", ISMRM 14, 2759):

* ``VERSION: STEJSKALTANNER``: ``x y z |G| DELTA delta TE`` with the unit gradient
  direction, the amplitude [T/m], pulse separation, pulse duration and echo time [s];
* ``VERSION: BVECTOR``: ``x y z b`` with b [s/m^2] (no timing).

Lines starting with ``#`` are comments.  Values are written with 17 significant digits, so
a scheme written and read back is identical to the last bit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mf_dmri.io.scheme import Scheme

VERSIONS = {"STEJSKALTANNER": 7, "BVECTOR": 4}
_ALIASES = {"1": "STEJSKALTANNER", "2": "BVECTOR"}


def _rows(path: Path) -> tuple[str, np.ndarray]:
    from mf_dmri.io.text import read_text

    lines = [ln.strip() for ln in read_text(path, "scheme").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines or not lines[0].upper().startswith("VERSION:"):
        raise ValueError(
            f"{path}: a Camino scheme starts with 'VERSION: STEJSKALTANNER' or "
            "'VERSION: BVECTOR'; this file has no VERSION line"
        )
    version = lines[0].split(":", 1)[1].strip().upper()
    version = _ALIASES.get(version, version)
    if version not in VERSIONS:
        raise ValueError(
            f"{path}: unsupported Camino scheme version {version!r}; mf_dmri reads "
            f"{', '.join(VERSIONS)}"
        )
    width = VERSIONS[version]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            values = [float(v) for v in line.split()]
        except ValueError as exc:
            raise ValueError(f"{path}: row {number} is not numbers: {line[:60]!r}") from exc
        if len(values) != width:
            raise ValueError(
                f"{path}: row {number} has {len(values)} values; a {version} scheme has "
                f"{width} per row"
            )
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: the scheme has a header but no measurements")
    return version, np.asarray(rows, dtype=np.float64)


def read_camino_scheme(path: str | os.PathLike) -> Scheme:
    """The measurements of a Camino scheme file (SI; a BVECTOR scheme has no timing)."""
    version, table = _rows(Path(path))
    if version == "BVECTOR":
        return Scheme(directions=table[:, :3], bvalues=table[:, 3])
    return Scheme(
        directions=table[:, :3],
        gradient_amplitudes=table[:, 3],
        pulse_separation=table[:, 4],
        pulse_duration=table[:, 5],
        echo_time=table[:, 6],
    )


def write_camino_scheme(path: str | os.PathLike, scheme: Scheme) -> Path:
    """Write ``scheme`` as STEJSKALTANNER when it has a timing, else as BVECTOR.

    A STEJSKALTANNER row needs an echo time: rows without one get the end of the second
    pulse, Delta + delta.
    """
    path = Path(path)
    if scheme.has_timing:
        echo = scheme.echo_time
        if echo is None:
            echo = scheme.pulse_separation + scheme.pulse_duration
        table = np.column_stack(
            [
                scheme.directions,
                scheme.amplitudes_si(),
                scheme.pulse_separation,
                scheme.pulse_duration,
                echo,
            ]
        )
        header = "VERSION: STEJSKALTANNER"
    else:
        table = np.column_stack([scheme.directions, scheme.bvalues_si()])
        header = "VERSION: BVECTOR"
    lines = [header] + [" ".join(f"{v:.17g}" for v in row) for row in table]
    path.write_text("\n".join(lines) + "\n")
    return path
