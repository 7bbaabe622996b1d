"""The result of a mesh eigen-solve: the :class:`~mf_dmri.eigenbasis.Eigenbasis` with the
diagnostics of its computation, merged from the pieces' spectra."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.fem.eigensolver import Spectrum
from mf_dmri.fem.error_estimates import apriori_relative_errors
from mf_dmri.fem.numbering import bandwidth_numbering, renumbered

#: Methods named in :attr:`FemEigenResult.solver`.
METHODS = ("dense", "block-lanczos")


def default_axes(dimension: int) -> np.ndarray:
    """Identity rows: local coordinate k is the lab axis k."""
    return np.eye(3)[:dimension]


@dataclass(frozen=True)
class FemEigenResult:
    """An :class:`Eigenbasis` of a mesh with the diagnostics of its computation.

    Args:
        basis: the eigenbasis (modes of all pieces, ascending eigenvalues).
        residuals: (L,) relative algebraic residuals ``||K phi - lambda M phi||_{M^-1}/lambda``.
        apriori_errors: (L,) a-priori relative discretisation indicators ``(h^2 lambda)^p``.
        piece_index: (L,) index of the connected piece each mode lives on.
        solver: the method(s) used: "dense" (tiny pieces) or "block-lanczos", joined by "+"
            when pieces used different ones.
        timings: wall times [s] of the steps ("assembly", "solve", "postprocess").
        solver_stats: eigensolver counts summed over pieces (factorisations, solved columns,
            spectrum slices) and wall times [s] (ordering, inertia counts, factorisation,
            solves, orthogonalisation, Rayleigh-Ritz, dense).
        num_nodes: degrees of freedom of the finite-element system (nodes for P1).
        num_pieces: number of connected pieces (= number of zero modes).
        max_eigenvalue: the cutoff lambda_max [1/m^2].
        mesh_size: largest element edge h [m].
        order: Lagrange order of the elements.
    """

    basis: Eigenbasis
    residuals: np.ndarray
    apriori_errors: np.ndarray
    piece_index: np.ndarray
    solver: str
    timings: dict = field(compare=False)
    num_nodes: int
    num_pieces: int
    max_eigenvalue: float
    mesh_size: float
    order: int
    solver_stats: dict = field(default_factory=dict, compare=False)
    spectra: tuple[Spectrum, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        size = self.basis.num_modes
        for name in ("residuals", "apriori_errors", "piece_index"):
            if np.shape(getattr(self, name)) != (size,):
                raise ValueError(f"{name} must have one entry per mode ({size})")
        if any(name not in METHODS for name in self.solver.split("+")):
            raise ValueError(f"unknown solver method {self.solver!r}")


def projected_matrices(phi: np.ndarray, matrices, chunk: int = 128) -> np.ndarray:
    """``phi^T A phi`` of each sparse symmetric ``A`` in ``matrices``, (len, L, L) for
    ``phi`` (N, L), exactly symmetric.  The sparse products run in a bandwidth-reducing
    numbering (:mod:`mf_dmri.fem.numbering`) on C-contiguous column chunks of ``phi`` (the
    layout scipy's sparse-dense product takes without a transposed copy of the whole
    block); only the upper block triangle is multiplied (half the dense flops) and no
    (N, L) temporary is made (first touches of fresh memory dominated the product on a
    126k-unknown P2 basis of 961 modes)."""
    size = phi.shape[1]
    out = np.zeros((len(matrices), size, size))
    if size == 0:
        return out
    numbering = bandwidth_numbering(matrices[0])
    inverse = np.argsort(numbering)
    matrices = [renumbered(matrix, numbering) for matrix in matrices]
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        part = phi[numbering, start:stop]  # a C-contiguous copy in the new numbering
        for k, matrix in enumerate(matrices):
            out[k, :stop, start:stop] = phi[:, :stop].T @ (matrix @ part)[inverse]
    upper = np.triu(out)
    return upper + np.triu(out, 1).transpose(0, 2, 1)


def assemble_result(system, spectra, count, lam_max, axes, label) -> FemEigenResult:
    """Merge the pieces' modes (ascending), keep ``count``, build moments and diagnostics."""
    values = np.concatenate([s.eigenvalues for s in spectra])
    owner = np.concatenate([np.full(s.eigenvalues.size, i) for i, s in enumerate(spectra)])
    local = np.concatenate([np.arange(s.eigenvalues.size) for s in spectra])
    order = np.lexsort((owner, values))[:count]
    dim = system.dimension
    moments = np.zeros((dim, count, count))
    integrals, residuals, apriori = (np.zeros(count) for _ in range(3))
    for i, piece in enumerate(system.pieces):
        slots = np.flatnonzero(owner[order] == i)
        if slots.size == 0:
            continue
        phi = spectra[i].vectors[:, local[order][slots]]
        lam = spectra[i].eigenvalues[local[order][slots]]
        projected = projected_matrices(phi, piece.moments)
        for k in range(dim):
            moments[k][np.ix_(slots, slots)] = projected[k]
        integrals[slots] = phi.T @ (piece.mass @ np.ones(piece.num_dofs))
        norms = spectra[i].residual_norms[local[order][slots]]
        residuals[slots] = norms / np.where(lam > 0, lam, lam_max)
        apriori[slots] = apriori_relative_errors(lam, piece.mesh_size, piece.order)
    basis = Eigenbasis(
        eigenvalues=torch.as_tensor(values[order]),
        moments=torch.as_tensor(moments),
        mode_integrals=torch.as_tensor(integrals),
        volume=torch.tensor(system.volume, dtype=torch.float64),
        axes=torch.as_tensor(default_axes(dim) if axes is None else np.asarray(axes, float)),
        label=label,
    )
    stats: dict = {}
    for spectrum in spectra:
        for key, value in spectrum.stats.items():
            stats[key] = stats.get(key, 0) + value
    return FemEigenResult(
        basis=basis,
        residuals=residuals,
        apriori_errors=apriori,
        piece_index=owner[order],
        solver="+".join(sorted({s.method for s in spectra})),
        timings={},
        num_nodes=system.num_dofs,
        num_pieces=len(system.pieces),
        max_eigenvalue=lam_max,
        mesh_size=system.mesh_size,
        order=system.order,
        solver_stats=stats,
        spectra=spectra,
    )
