"""Can the mesh resolve the modes the cutoff asks for?

The cutoff lambda_max [1/m^2] asks for every mode of wavelength at least
ell = 2 pi / sqrt(lambda_max) [m].  A finite-element mesh represents a mode only with
elements shorter than its wavelength (Nyquist: two elements per wavelength at the least),
and its discrete spectrum is accurate only in its lower part (the upper half of a P1
spectrum is discretisation, not physics; Strang and Fix 1973, ch. 6).  Two checks, per
connected piece:

- the nodes must be closer than half the wavelength (typical spacing
  ``(volume / nodes)^(1/d) <= ell / 2``) and no element edge longer than two wavelengths
  (``mesh_size <= 2 ell``), otherwise modes the cutoff asks for are missing (a needle
  meshed with a few elements along its length keeps 2 modes where about 11 are asked for);
- at most half of the piece's degrees of freedom may be kept as modes, otherwise the cutoff
  is finer than the mesh (at the extreme every degree of freedom comes back as a "mode").

A failed check issues a :class:`ResolutionWarning`; turn it into an error with
``warnings.simplefilter("error", ResolutionWarning)`` (the CLI's ``--strict``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np


class ResolutionWarning(UserWarning):
    """The mesh cannot resolve the eigenmodes the cutoff asks for."""


#: Largest share of a piece's degrees of freedom that may be kept as modes.
MAX_MODE_SHARE = 0.5
#: Largest node spacing and element edge, in shortest wavelengths of the cutoff.
MAX_SPACING, MAX_EDGE = 0.5, 2.0


def shortest_wavelength(lam_max: float) -> float:
    """ell = 2 pi / sqrt(lambda_max) [m] of the cutoff ``lam_max`` [1/m^2]."""
    return 2.0 * math.pi / math.sqrt(lam_max)


def resolution_problems(pieces, kept: np.ndarray, lam_max: float) -> list[str]:
    """Sentences naming each piece that cannot resolve the cutoff ``lam_max`` [1/m^2];
    ``kept[i]`` is the number of modes kept in piece ``i`` (a FemMatrices)."""
    ell = shortest_wavelength(lam_max)
    problems = []
    for index, (piece, count) in enumerate(zip(pieces, kept, strict=True)):
        where = f"piece {index} (label {piece.label}, {piece.num_dofs} nodes)"
        spacing = (piece.volume / piece.num_dofs) ** (1.0 / piece.dimension)
        if piece.mesh_size > MAX_EDGE * ell or spacing > MAX_SPACING * ell:
            problems.append(
                f"{where}: node spacing {spacing:.3g} m and elements up to "
                f"{piece.mesh_size:.3g} m long cannot represent the modes of wavelength down "
                f"to {ell:.3g} m that the cutoff asks for; refine the mesh to mesh_size <= "
                f"{ell / 2:.3g} m or raise length_scale to >= "
                f"{max(2 * spacing, piece.mesh_size / 2):.3g} m"
            )
        if count > MAX_MODE_SHARE * piece.num_dofs:
            problems.append(
                f"{where}: the cutoff keeps {int(count)} modes of {piece.num_dofs} degrees "
                "of freedom: it is finer than the mesh (the upper part of a discrete "
                "spectrum is not physical); raise length_scale or refine the mesh"
            )
    return problems


def check_resolution(pieces, spectra, count: int, lam_max: float) -> None:
    """Warn (:class:`ResolutionWarning`) when the first ``count`` modes of the merged
    ``spectra`` (one per piece) are not resolved by the pieces' meshes."""
    merged = np.sort(np.concatenate([s.eigenvalues for s in spectra]))
    if count == 0:
        return
    last = merged[count - 1]
    kept = np.array([int((s.eigenvalues <= last).sum()) for s in spectra])
    problems = resolution_problems(pieces, kept, lam_max)
    if problems:
        warnings.warn(
            "the mesh cannot resolve the cutoff: " + "; ".join(problems),
            ResolutionWarning,
            stacklevel=4,
        )
