"""The Neumann Laplace eigenbasis of a mesh: ``K phi = lambda M phi`` up to a cutoff.

Cutoff convention: a ``length_scale`` ell [m] keeps every mode whose wavelength is at least
ell, i.e. ``lambda <= lambda_max = (2 pi / ell)^2`` [1/m^2]; or pass ``max_eigenvalue``
directly.  ALL eigenvalues up to the cutoff are kept, plus the rest of a degenerate cluster
that straddles it (modes are computed past the cutoff to see where the cluster ends; the
count comes from :func:`mf_dmri.eigenbasis.cluster_safe_count`).

Every connected piece of every compartment is solved on its own; its zero eigenvalue is set
to exactly 0 and its mode to the exact constant ``1/sqrt(V_piece)`` (the other modes of the
piece are projected M-orthogonal to it).  The result is the project's
:class:`~mf_dmri.eigenbasis.Eigenbasis` in the mesh's own coordinates (axes = identity rows).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from mf_dmri.eigenbasis import CLUSTER_RTOL, Eigenbasis, cluster_safe_count
from mf_dmri.fem.assembly import FemMatrices
from mf_dmri.fem.error_estimates import apriori_relative_errors, relative_residuals
from mf_dmri.fem.solvers import SOLVERS, EigenPairs, solve
from mf_dmri.fem.system import FemSystem, assemble_mesh

_LOG = logging.getLogger(__name__)

#: Up to this many degrees of freedom per piece, solver="auto" uses dense LAPACK
#: (measured crossover, docs/fem_eigensolver.md).
DENSE_LIMIT = 200
#: First solve reaches this fraction past the cutoff to see where a cluster ends.
CUTOFF_MARGIN = 0.05


@dataclass(frozen=True)
class FemEigenResult:
    """An :class:`Eigenbasis` of a mesh with the diagnostics of its computation.

    Args:
        basis: the eigenbasis (modes of all pieces, ascending eigenvalues).
        residuals: (L,) relative algebraic residuals ``||K phi - lambda M phi||_{M^-1}/lambda``.
        apriori_errors: (L,) a-priori relative discretisation indicators ``(h^2 lambda)^p``.
        piece_index: (L,) index of the connected piece each mode lives on.
        solver: the back-end(s) used: "dense", "shift-invert" or "lobpcg", joined by "+"
            when solver="auto" picked different ones for different pieces.
        timings: wall times [s] of the steps ("assembly", "solve", "postprocess").
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

    def __post_init__(self) -> None:
        size = self.basis.num_modes
        for name in ("residuals", "apriori_errors", "piece_index"):
            if np.shape(getattr(self, name)) != (size,):
                raise ValueError(f"{name} must have one entry per mode ({size})")
        if any(name not in SOLVERS for name in self.solver.split("+")):
            raise ValueError(f"unknown solver {self.solver!r}")


def cutoff_eigenvalue(
    length_scale: float | None = None, max_eigenvalue: float | None = None
) -> float:
    """lambda_max [1/m^2] from exactly one of ``length_scale`` ell [m] (lambda_max =
    (2 pi / ell)^2) or ``max_eigenvalue`` [1/m^2]."""
    if (length_scale is None) == (max_eigenvalue is None):
        raise ValueError("pass exactly one of length_scale [m] or max_eigenvalue [1/m^2]")
    if length_scale is not None:
        ell = float(length_scale)
        if not (math.isfinite(ell) and ell > 0):
            raise ValueError(f"length_scale must be a positive length [m], got {length_scale}")
        return (2.0 * math.pi / ell) ** 2
    value = float(max_eigenvalue)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"max_eigenvalue must be positive [1/m^2], got {max_eigenvalue}")
    return value


def default_axes(dimension: int) -> np.ndarray:
    """Identity rows: local coordinate k is the lab axis k."""
    return np.eye(3)[:dimension]


def solve_eigenbasis(
    system: FemSystem,
    *,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    solver: str = "auto",
    cluster_rtol: float = CLUSTER_RTOL,
    axes=None,
    label: str = "",
) -> FemEigenResult:
    """All Neumann eigenpairs of an assembled system up to the cutoff, as an Eigenbasis.

    Args:
        system: the assembled mesh (:func:`mf_dmri.fem.system.assemble_mesh`).
        length_scale: shortest wavelength kept ell [m]; lambda_max = (2 pi / ell)^2.
        max_eigenvalue: the cutoff lambda_max [1/m^2] (instead of ``length_scale``).
        solver: "auto" (dense up to ``DENSE_LIMIT`` dofs per piece, else shift-invert),
            "dense", "shift-invert" or "lobpcg".
        cluster_rtol: relative gap [-] under which eigenvalues count as one cluster.
        axes: (d, 3) lab-frame unit vectors of the mesh coordinates [-] (default identity).
        label: free text stored in the basis.
    """
    lam_max = cutoff_eigenvalue(length_scale, max_eigenvalue)
    if solver != "auto" and solver not in SOLVERS:
        raise ValueError(f"solver must be 'auto' or one of {SOLVERS}, got {solver!r}")
    start = time.perf_counter()
    threshold = lam_max * (1.0 + CUTOFF_MARGIN)
    while True:
        piece_pairs = [_piece_modes(p, threshold, solver) for p in system.pieces]
        merged = np.sort(np.concatenate([pairs.eigenvalues for pairs, _ in piece_pairs]))
        count = cluster_safe_count(torch.as_tensor(merged), lam_max, cluster_rtol)
        if count < merged.size or merged.size == system.num_dofs:
            break
        threshold *= 1.25
        _LOG.info("a cluster reaches past the solve window; widening it to %.6g", threshold)
    solved = time.perf_counter()
    result = _assemble_result(system, piece_pairs, count, lam_max, axes, label)
    timings = {"solve": solved - start, "postprocess": time.perf_counter() - solved}
    return replace(result, timings=timings)


def _piece_modes(piece: FemMatrices, threshold: float, solver: str) -> tuple[EigenPairs, str]:
    """Eigenpairs of one piece below ``threshold`` with the exact constant zero mode."""
    name = solver
    if solver == "auto":
        name = "dense" if piece.num_dofs <= DENSE_LIMIT else "shift-invert"
    pairs = solve(piece.stiffness, piece.mass, threshold, name, dimension=piece.dimension)
    values, vectors = pairs.eigenvalues.copy(), pairs.vectors.copy()
    if values.size == 0 or abs(values[0]) > 1e-6 * threshold:
        raise ArithmeticError(
            "the eigensolver missed the constant Neumann mode of a piece; "
            "try solver='dense' on a small mesh to diagnose"
        )
    if values.size > 1 and values[1] <= 1e-6 * threshold:
        raise ArithmeticError(
            "a connected piece has two zero eigenvalues: the mesh is "
            "degenerate (check for near-zero elements)"
        )
    constant = np.full(piece.num_dofs, 1.0 / math.sqrt(piece.volume))
    values[0], vectors[:, 0] = 0.0, constant
    overlap = constant @ (piece.mass @ vectors[:, 1:])
    vectors[:, 1:] -= np.outer(constant, overlap)
    return EigenPairs(values, vectors), name


def _assemble_result(system, piece_pairs, count, lam_max, axes, label) -> FemEigenResult:
    """Merge the pieces' modes (ascending), keep ``count``, build moments and diagnostics."""
    values = np.concatenate([pairs.eigenvalues for pairs, _ in piece_pairs])
    owner = np.concatenate(
        [np.full(pairs.eigenvalues.size, i) for i, (pairs, _) in enumerate(piece_pairs)]
    )
    local = np.concatenate([np.arange(pairs.eigenvalues.size) for pairs, _ in piece_pairs])
    order = np.lexsort((owner, values))[:count]
    dim = system.dimension
    moments = np.zeros((dim, count, count))
    integrals, residuals, apriori = (np.zeros(count) for _ in range(3))
    for i, piece in enumerate(system.pieces):
        slots = np.flatnonzero(owner[order] == i)
        if slots.size == 0:
            continue
        pairs = piece_pairs[i][0]
        phi = pairs.vectors[:, local[order][slots]]
        lam = pairs.eigenvalues[local[order][slots]]
        for k in range(dim):
            block = phi.T @ (piece.moments[k] @ phi)
            moments[k][np.ix_(slots, slots)] = 0.5 * (block + block.T)
        integrals[slots] = phi.T @ (piece.mass @ np.ones(piece.num_dofs))
        residuals[slots] = relative_residuals(piece.stiffness, piece.mass, lam, phi, lam_max)
        apriori[slots] = apriori_relative_errors(lam, piece.mesh_size, piece.order)
    basis = Eigenbasis(
        eigenvalues=torch.as_tensor(values[order]),
        moments=torch.as_tensor(moments),
        mode_integrals=torch.as_tensor(integrals),
        volume=torch.tensor(system.volume, dtype=torch.float64),
        axes=torch.as_tensor(default_axes(dim) if axes is None else np.asarray(axes, float)),
        label=label,
    )
    names = sorted({name for _, name in piece_pairs})
    return FemEigenResult(
        basis=basis,
        residuals=residuals,
        apriori_errors=apriori,
        piece_index=owner[order],
        solver="+".join(names),
        timings={},
        num_nodes=system.num_dofs,
        num_pieces=len(system.pieces),
        max_eigenvalue=lam_max,
        mesh_size=system.mesh_size,
        order=system.order,
    )


def mesh_eigenbasis_with_diagnostics(
    nodes,
    elements=None,
    *,
    element_labels=None,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    order: int = 1,
    solver: str = "auto",
    cluster_rtol: float = CLUSTER_RTOL,
    label: str = "",
) -> FemEigenResult:
    """:func:`mesh_eigenbasis` with its diagnostics (residuals, timings, solver, sizes)."""
    start = time.perf_counter()
    system = assemble_mesh(nodes, elements, element_labels=element_labels, order=order)
    assembled = time.perf_counter() - start
    result = solve_eigenbasis(
        system,
        length_scale=length_scale,
        max_eigenvalue=max_eigenvalue,
        solver=solver,
        cluster_rtol=cluster_rtol,
        label=label,
    )
    return replace(result, timings={"assembly": assembled, **result.timings})


def mesh_eigenbasis(
    nodes,
    elements=None,
    *,
    element_labels=None,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    order: int = 1,
    solver: str = "auto",
    cluster_rtol: float = CLUSTER_RTOL,
    label: str = "",
) -> Eigenbasis:
    """The Neumann Laplace eigenbasis of a triangle/tetrahedron mesh up to a cutoff.

    Args:
        nodes: (N, d) node coordinates [m] (d = 2 or 3) or a scikit-fem MeshTri/MeshTet.
        elements: (E, d+1) node indices of the triangles/tetrahedra (None for a skfem Mesh).
        element_labels: optional (E,) compartment labels (impermeable compartments).
        length_scale: shortest wavelength kept ell [m]; lambda_max = (2 pi / ell)^2 [1/m^2].
        max_eigenvalue: the cutoff lambda_max [1/m^2] (instead of ``length_scale``).
        order: 1 (P1) or 2 (P2) Lagrange elements.
        solver: "auto", "dense", "shift-invert" or "lobpcg".
        cluster_rtol: relative gap [-] under which eigenvalues form one (uncut) cluster.
        label: free text stored in the basis.

    Returns:
        The :class:`~mf_dmri.eigenbasis.Eigenbasis` (M-orthonormal modes, exact zero modes,
        moments in the mesh coordinates, axes = identity rows).
    """
    return mesh_eigenbasis_with_diagnostics(
        nodes,
        elements,
        element_labels=element_labels,
        length_scale=length_scale,
        max_eigenvalue=max_eigenvalue,
        order=order,
        solver=solver,
        cluster_rtol=cluster_rtol,
        label=label,
    ).basis
