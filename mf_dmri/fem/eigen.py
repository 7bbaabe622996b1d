"""The Neumann Laplace eigenbasis of a mesh: ``K phi = lambda M phi`` up to a cutoff.

Cutoff convention: a ``length_scale`` ell [m] keeps every mode whose wavelength is at least
ell, i.e. ``lambda <= lambda_max = (2 pi / ell)^2`` [1/m^2]; or pass ``max_eigenvalue``
directly.  ALL eigenvalues up to the cutoff are kept, plus the rest of a degenerate cluster
that straddles it (modes are computed past the cutoff to see where the cluster ends; the
count comes from :func:`mf_dmri.eigenbasis.cluster_safe_count`).

Every connected piece of every compartment is solved on its own by the project's eigensolver
(:mod:`mf_dmri.fem.eigensolver`: inertia-counted spectrum slices, shift-invert block
Lanczos, dense LAPACK for tiny pieces); its zero eigenvalue is exactly 0 and its mode the
exact constant ``1/sqrt(V_piece)`` (deflated: the other modes are M-orthogonal to it).  The
result is the project's :class:`~mf_dmri.eigenbasis.Eigenbasis` in the mesh's own
coordinates (axes = identity rows).  :func:`extend_eigenbasis` raises the cutoff of a solved
system reusing its modes, counts and orderings (only the new spectrum slices are computed).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

import numpy as np
import torch

from mf_dmri.eigenbasis import CLUSTER_RTOL, Eigenbasis, cluster_safe_count
from mf_dmri.fem.assembly import DEFAULT_ELEMENT_ORDER, FemMatrices
from mf_dmri.fem.discretisation import attach_discretisation
from mf_dmri.fem.eigen_result import FemEigenResult, assemble_result, default_axes
from mf_dmri.fem.eigensolver import (
    ShiftInvertLanczos,
    Spectrum,
    extend_spectrum,
    lowest_spectrum,
)
from mf_dmri.fem.numbering import bandwidth_numbering, renumbered, restored
from mf_dmri.fem.resolution import check_resolution
from mf_dmri.fem.system import FemSystem, assemble_mesh

_LOG = logging.getLogger(__name__)

#: First solve reaches this fraction past the cutoff to see where a cluster ends.
CUTOFF_MARGIN = 0.05
__all__ = [
    "FemEigenResult",
    "cutoff_eigenvalue",
    "default_axes",
    "extend_eigenbasis",
    "mesh_eigenbasis",
    "mesh_eigenbasis_with_diagnostics",
    "solve_eigenbasis",
]


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


def solve_eigenbasis(
    system: FemSystem,
    *,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    solver: ShiftInvertLanczos | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    axes=None,
    label: str = "",
) -> FemEigenResult:
    """All Neumann eigenpairs of an assembled system up to the cutoff, as an Eigenbasis.

    Args:
        system: the assembled mesh (:func:`mf_dmri.fem.system.assemble_mesh`).
        length_scale: shortest wavelength kept ell [m]; lambda_max = (2 pi / ell)^2.
        max_eigenvalue: the cutoff lambda_max [1/m^2] (instead of ``length_scale``).
        solver: eigensolver settings, a :class:`~mf_dmri.fem.eigensolver.ShiftInvertLanczos`
            (None: the defaults).
        cluster_rtol: relative gap [-] under which eigenvalues count as one cluster.
        axes: (d, 3) lab-frame unit vectors of the mesh coordinates [-] (default identity).
        label: free text stored in the basis.
    """
    return _solve(
        system,
        None,
        cutoff_eigenvalue(length_scale, max_eigenvalue),
        solver,
        cluster_rtol,
        axes,
        label,
    )


def extend_eigenbasis(
    system: FemSystem,
    result: FemEigenResult,
    *,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    solver: ShiftInvertLanczos | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    axes=None,
    label: str = "",
) -> FemEigenResult:
    """:func:`solve_eigenbasis` of ``system`` at a higher cutoff, reusing ``result`` (a solve
    of the same system): its modes, inertia counts and fill-reducing orderings are kept and
    only the spectrum slices above its old reach are factorised and solved.  Arguments as
    in :func:`solve_eigenbasis` (``length_scale`` [m], ``max_eigenvalue`` [1/m^2])."""
    if len(result.spectra) != len(system.pieces) or any(
        s.vectors.shape[0] != p.num_dofs for s, p in zip(result.spectra, system.pieces)
    ):
        raise ValueError("result was not computed from this system; call solve_eigenbasis")
    return _solve(
        system,
        result.spectra,
        cutoff_eigenvalue(length_scale, max_eigenvalue),
        solver,
        cluster_rtol,
        axes,
        label,
    )


def _solve(system, spectra, lam_max, solver, cluster_rtol, axes, label) -> FemEigenResult:
    """Solve (or extend ``spectra``) past ``lam_max`` until no cluster is cut, then merge."""
    start = time.perf_counter()
    threshold = lam_max * (1.0 + CUTOFF_MARGIN)
    while True:
        spectra = tuple(
            _piece_spectrum(p, threshold, solver, None if spectra is None else spectra[i])
            for i, p in enumerate(system.pieces)
        )
        merged = np.sort(np.concatenate([s.eigenvalues for s in spectra]))
        count = cluster_safe_count(torch.as_tensor(merged), lam_max, cluster_rtol)
        if count < merged.size or merged.size == system.num_dofs:
            break
        threshold *= 1.25
        _LOG.info("a cluster reaches past the solve window; widening it to %.6g", threshold)
    solved = time.perf_counter()
    check_resolution(system.pieces, spectra, count, lam_max)
    result = assemble_result(system, spectra, count, lam_max, axes, label)
    timings = {"solve": solved - start, "postprocess": time.perf_counter() - solved}
    return replace(result, timings=timings)


def _piece_spectrum(piece: FemMatrices, threshold: float, solver, previous) -> Spectrum:
    """Eigenpairs of one piece below ``threshold`` [1/m^2] with the exact constant zero mode
    (extending ``previous`` when given); the factorisation is not kept.  Solved in a
    bandwidth-reducing numbering (:mod:`mf_dmri.fem.numbering`), returned in the piece's."""
    args = {"dimension": piece.dimension, "solver": solver}
    numbering = bandwidth_numbering(piece.stiffness)
    stiffness = renumbered(piece.stiffness, numbering)
    mass = renumbered(piece.mass, numbering)
    if previous is None:
        constant = np.full((piece.num_dofs, 1), 1.0 / math.sqrt(piece.volume))
        found = lowest_spectrum(
            stiffness,
            mass,
            threshold,
            deflation=constant,
            mass_bound=piece.mass_jacobi_bound,
            **args,
        )
    else:
        previous = replace(previous, vectors=previous.vectors[numbering])
        found = extend_spectrum(stiffness, mass, previous, threshold, **args)
    if found.eigenvalues.size > 1 and found.eigenvalues[1] <= 1e-6 * threshold:
        raise ArithmeticError(
            "a connected piece has two zero eigenvalues: the mesh is "
            "degenerate (check for near-zero elements)"
        )
    return replace(found, vectors=restored(found.vectors, numbering), factor=None)


def mesh_eigenbasis_with_diagnostics(
    nodes,
    elements=None,
    *,
    element_labels=None,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    order: int = DEFAULT_ELEMENT_ORDER,
    solver: ShiftInvertLanczos | None = None,
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
    mesh = {"element_labels": element_labels, "order": order, "solver": solver}
    basis = attach_discretisation(result.basis, nodes, elements, cluster_rtol=cluster_rtol, **mesh)
    return replace(result, basis=basis, timings={"assembly": assembled, **result.timings})


def mesh_eigenbasis(
    nodes,
    elements=None,
    *,
    element_labels=None,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    order: int = DEFAULT_ELEMENT_ORDER,
    solver: ShiftInvertLanczos | None = None,
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
        order: 1 (P1) or 2 (P2, the default: it reaches a signal with a 1e-3 error bar
            first, benchmarks/results/element_order.md) Lagrange elements.
        solver: eigensolver settings (:class:`~mf_dmri.fem.eigensolver.ShiftInvertLanczos`;
            None: the defaults).
        cluster_rtol: relative gap [-] under which eigenvalues form one (uncut) cluster.
        label: free text stored in the basis.

    Returns:
        The :class:`~mf_dmri.eigenbasis.Eigenbasis` (M-orthonormal modes, exact zero modes,
        moments in the mesh coordinates, axes = identity rows), carrying its mesh and order
        (:class:`~mf_dmri.fem.discretisation.FemDiscretisation`) for the discretisation
        error of :func:`mf_dmri.signal.signal_with_error`.
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
