"""The mesh a finite-element basis was solved on, kept to estimate its discretisation error.

A mesh basis of order p (P1 or P2 Lagrange) carries a :class:`FemDiscretisation`: its mesh,
order and solver settings.  The signal layer (:mod:`mf_dmri.signal.discretisation`) asks it
for the *companion* basis, the same mesh solved with the other order at the same cutoff,
and turns the change of the signal into a bound of the finite-element error of the basis
(P1 versus P2 on one mesh: the same polyhedron, so the bound is on the discretisation
error alone, not on how well the polyhedron approximates a curved cell).

The companion is computed on first use and kept (per instance) for later calls at the same
or a lower cutoff.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from mf_dmri.eigenbasis import CLUSTER_RTOL, Eigenbasis
from mf_dmri.fem.assembly import DEFAULT_ELEMENT_ORDER
from mf_dmri.fem.eigensolver import ShiftInvertLanczos
from mf_dmri.fem.mesh_input import mesh_arrays
from mf_dmri.fem.resolution import ResolutionWarning


@dataclass(frozen=True, eq=False)
class FemDiscretisation:
    """The mesh and element order of a finite-element basis.

    Args:
        nodes: (N, d) float64 node coordinates [m] (d = 2 or 3).
        elements: (E, d+1) int64 node indices of the triangles/tetrahedra.
        element_labels: (E,) int64 compartment labels.
        order: Lagrange order of the basis (1 or 2).
        solver: eigensolver settings of the basis (None: the defaults).
        cluster_rtol: relative gap [-] under which eigenvalues form one cluster.
    """

    nodes: np.ndarray
    elements: np.ndarray
    element_labels: np.ndarray
    order: int
    solver: ShiftInvertLanczos | None = None
    cluster_rtol: float = CLUSTER_RTOL
    _companions: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 (P1) or 2 (P2), got {self.order!r}")

    @property
    def companion_order(self) -> int:
        """The other Lagrange order (2 for a P1 basis, 1 for a P2 basis)."""
        return 3 - self.order

    def scaled(self, factor: float) -> FemDiscretisation:
        """The mesh scaled uniformly by ``factor`` [-] (for :meth:`Eigenbasis.scaled`)."""
        return replace(self, nodes=self.nodes * float(factor), _companions={})

    def companion(self, max_eigenvalue: float, axes) -> Eigenbasis:
        """The basis of the same mesh with the other order, every mode of eigenvalue <=
        ``max_eigenvalue`` [1/m^2], in the frame ``axes`` (d, 3) [-].  A P1 companion of a
        P2 basis may not resolve the cutoff; its resolution warning is not repeated (the
        bound it gives then grows, see :mod:`mf_dmri.signal.discretisation`)."""
        from mf_dmri.fem.eigen import solve_eigenbasis
        from mf_dmri.fem.system import assemble_mesh

        cutoff = float(max_eigenvalue)
        kept = self._companions.get("basis")
        if kept is None or self._companions["cutoff"] < cutoff:
            system = assemble_mesh(
                self.nodes,
                self.elements,
                element_labels=self.element_labels,
                order=self.companion_order,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResolutionWarning)
                kept = solve_eigenbasis(
                    system,
                    max_eigenvalue=cutoff,
                    solver=self.solver,
                    cluster_rtol=self.cluster_rtol,
                ).basis
            self._companions.update(basis=kept, cutoff=cutoff)
        basis = kept.truncated(cutoff) if float(kept.eigenvalues[-1]) > cutoff else kept
        return replace(basis, axes=axes)


def attach_discretisation(
    basis: Eigenbasis,
    nodes,
    elements=None,
    *,
    element_labels=None,
    order: int = DEFAULT_ELEMENT_ORDER,
    solver: ShiftInvertLanczos | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
) -> Eigenbasis:
    """``basis`` carrying the :class:`FemDiscretisation` of the mesh it was solved on, the
    mesh and settings given as to :func:`mf_dmri.fem.eigen.mesh_eigenbasis` (``nodes``
    [m]; ``cluster_rtol`` [-])."""
    points, cells, labels = mesh_arrays(nodes, elements, element_labels)
    model = FemDiscretisation(points, cells, labels, int(order), solver, float(cluster_rtol))
    return replace(basis, discretisation=model)
