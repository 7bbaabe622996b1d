"""The semi-discrete Bloch-Torrey operator of a finite-element system.

Every engine that works on the finite-element matrices of a mesh (the matrix formalism on
the eigenmodes of the operator, and the time-stepping BTPDE reference solver) consumes one
:class:`BlochTorreyOperator`: the transverse magnetisation ``m(t)`` (nodal values) obeys

    M dm/dt = -(A + i gamma g(t) . J) m,   m(0) = m0,   signal(t) = r^T M m(t),

with ``M`` the mass matrix, ``A`` the symmetric positive semi-definite *decay operator*
(diffusion ``sum_c D_c K_c``, plus permeation through interfaces, surface relaxivity
(Robin) terms and bulk relaxation ``sum_c M_c / T2_c`` when present), ``J_k`` the
first-moment matrices, ``m0`` the initial (spin-density) magnetisation and ``r`` the
readout weights (ones: the whole domain is read out).

This module only holds the operator and builds it for impermeable compartments; the
permeable multi-compartment builder and the solvers live in their own modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mf_dmri.fem.assembly import FemMatrices, block_matrices


@dataclass(frozen=True)
class BlochTorreyOperator:
    """Finite-element Bloch-Torrey system of a (possibly multi-compartment) domain.

    Args:
        mass: (N, N) symmetric positive definite CSR mass matrix M [m^d].
        decay: (N, N) symmetric positive semi-definite CSR decay operator A [m^d/s]
            (diffusion, permeation, surface and bulk relaxation).
        moments: d CSR first-moment matrices J_k [m^(d+1)], local coordinates.
        initial: (N,) initial magnetisation m0 (nodal spin density) [-].
        readout: (N,) readout weights r [-] (ones for the whole domain).
        axes: (d, 3) laboratory-frame unit vectors of the local coordinates [-].
        compartment: (N,) integer compartment label of each degree of freedom.
        mesh_size: largest element edge length h [m].
    """

    mass: sp.csr_matrix
    decay: sp.csr_matrix
    moments: tuple[sp.csr_matrix, ...]
    initial: np.ndarray
    readout: np.ndarray
    axes: np.ndarray
    compartment: np.ndarray
    mesh_size: float

    def __post_init__(self) -> None:
        n = self.mass.shape[0]
        if self.mass.shape != (n, n) or self.decay.shape != (n, n):
            raise ValueError("mass and decay must be square matrices of one size")
        if len(self.moments) not in (2, 3) or any(q.shape != (n, n) for q in self.moments):
            raise ValueError("moments must be 2 or 3 matrices of the mass matrix's size")
        for name in ("initial", "readout", "compartment"):
            value = np.asarray(getattr(self, name))
            if value.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), one entry per node")
            if name != "compartment" and not np.all(np.isfinite(value)):
                raise ValueError(f"{name} contains NaN or infinite values")
            object.__setattr__(self, name, value)
        axes = np.asarray(self.axes, dtype=float)
        if axes.shape != (self.dimension, 3):
            raise ValueError(f"axes must have shape ({self.dimension}, 3)")
        object.__setattr__(self, "axes", axes)

    @property
    def num_dofs(self) -> int:
        return int(self.mass.shape[0])

    @property
    def dimension(self) -> int:
        return len(self.moments)

    def initial_signal(self) -> float:
        """r^T M m0: the signal without diffusion weighting or relaxation [m^d]."""
        return float(self.readout @ (self.mass @ self.initial))


def impermeable_operator(
    pieces: FemMatrices | list[FemMatrices],
    diffusivity: float | list[float],
    *,
    t2: float | list[float] = math.inf,
    spin_density: float | list[float] = 1.0,
    axes: np.ndarray | None = None,
) -> BlochTorreyOperator:
    """The Bloch-Torrey operator of independent (impermeable) mesh pieces.

    Args:
        pieces: the assembled matrices of one piece or a list of pieces (see
            :func:`mf_dmri.fem.assemble_mesh`); each is its own compartment.
        diffusivity: diffusion coefficient per piece [m^2/s] (one value for all or a list).
        t2: transverse relaxation time per piece [s] (``math.inf`` for none).
        spin_density: relative spin density per piece [-].
        axes: (d, 3) laboratory frame of the mesh coordinates; identity rows by default.
    """
    pieces = [pieces] if isinstance(pieces, FemMatrices) else list(pieces)
    count = len(pieces)
    diffusivities = _per_piece(diffusivity, count, "diffusivity")
    t2s = _per_piece(t2, count, "t2")
    densities = _per_piece(spin_density, count, "spin_density", allow_zero=True)
    blocks = []
    for piece, d_value, t2_value in zip(pieces, diffusivities, t2s, strict=True):
        block = d_value * piece.stiffness
        if math.isfinite(t2_value):
            block = block + piece.mass / t2_value
        blocks.append(block)
    stacked = block_matrices(pieces)
    sizes = [p.num_dofs for p in pieces]
    labels = np.repeat(np.arange(count), sizes)
    dim = stacked.dimension
    return BlochTorreyOperator(
        mass=stacked.mass,
        decay=sp.block_diag(blocks, format="csr"),
        moments=stacked.moments,
        initial=np.repeat(densities, sizes),
        readout=np.ones(sum(sizes)),
        axes=np.eye(dim, 3) if axes is None else axes,
        compartment=labels,
        mesh_size=stacked.mesh_size,
    )


def _per_piece(value, count: int, name: str, *, allow_zero: bool = False) -> np.ndarray:
    values = np.atleast_1d(np.asarray(value, dtype=float))
    if values.size == 1:
        values = np.repeat(values, count)
    if values.shape != (count,):
        raise ValueError(f"{name} needs one value or one per piece ({count}), got {values.size}")
    if np.isnan(values).any():
        raise ValueError(f"{name} contains NaN; pass numbers")
    bad = values < 0 if allow_zero else values <= 0
    if bad.any():
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}")
    return values
