"""The 2-D path: the Neumann eigenbasis of a cross-section placed in the lab frame.

A cross-section (of an axon, a fibre, any prism) is a triangle mesh or a simple polygon in its
own plane coordinates (x_1, x_2) [m]; ``axes`` (2, 3) are the lab-frame unit vectors of x_1
and x_2.  The default plane is the lab x-y plane (the prism axis along lab z).  The signal
layer combines this basis with free (or bounded) diffusion along the normal of the plane.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mf_dmri.eigenbasis import CLUSTER_RTOL, Eigenbasis
from mf_dmri.fem.assembly import DEFAULT_ELEMENT_ORDER
from mf_dmri.fem.discretisation import attach_discretisation
from mf_dmri.fem.eigen import FemEigenResult, solve_eigenbasis
from mf_dmri.fem.eigensolver import ShiftInvertLanczos
from mf_dmri.fem.polygon import triangulate_polygon
from mf_dmri.fem.system import assemble_mesh

#: The default plane: the lab x-y plane (cross-section of a prism along lab z).
XY_PLANE = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def _checked_axes(axes) -> np.ndarray:
    frame = np.asarray(axes, dtype=np.float64)
    if frame.shape != (2, 3):
        raise ValueError(
            f"axes must be (2, 3): the lab-frame unit vectors of the plane "
            f"coordinates x_1 and x_2, got shape {frame.shape}"
        )
    if not np.allclose(frame @ frame.T, np.eye(2), atol=1e-9):
        raise ValueError("axes must be two orthonormal rows; normalise and orthogonalise them")
    return frame


def cross_section_result(
    nodes,
    triangles=None,
    *,
    axes=XY_PLANE,
    element_labels=None,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    order: int = DEFAULT_ELEMENT_ORDER,
    solver: ShiftInvertLanczos | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    label: str = "",
) -> FemEigenResult:
    """:func:`cross_section_eigenbasis` with the solver diagnostics."""
    frame = _checked_axes(axes)
    if not (hasattr(nodes, "p") or np.shape(nodes)[-1] == 2):
        raise ValueError("a cross-section needs 2-D nodes (N, 2) [m] in its plane coordinates")
    system = assemble_mesh(nodes, triangles, element_labels=element_labels, order=order)
    if system.dimension != 2:
        raise ValueError("a cross-section must be a triangle mesh (MeshTri), not a volume mesh")
    result = solve_eigenbasis(
        system,
        length_scale=length_scale,
        max_eigenvalue=max_eigenvalue,
        solver=solver,
        cluster_rtol=cluster_rtol,
        axes=frame,
        label=label,
    )
    mesh = {"element_labels": element_labels, "order": order, "solver": solver}
    basis = attach_discretisation(result.basis, nodes, triangles, cluster_rtol=cluster_rtol, **mesh)
    return replace(result, basis=basis)


def cross_section_eigenbasis(
    nodes,
    triangles=None,
    *,
    axes=XY_PLANE,
    element_labels=None,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    order: int = DEFAULT_ELEMENT_ORDER,
    solver: ShiftInvertLanczos | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    label: str = "",
) -> Eigenbasis:
    """Neumann eigenbasis of a triangulated cross-section, placed in the lab frame.

    Args:
        nodes: (N, 2) plane coordinates [m] or a scikit-fem MeshTri.
        triangles: (E, 3) node indices (None for a MeshTri).
        axes: (2, 3) lab-frame unit vectors of the plane coordinates [-] (default lab x, y).
        element_labels: optional (E,) compartment labels (impermeable compartments).
        length_scale: shortest wavelength kept ell [m]; lambda_max = (2 pi / ell)^2 [1/m^2].
        max_eigenvalue: the cutoff lambda_max [1/m^2] (instead of ``length_scale``).
        order: 1 (P1) or 2 (P2, the default) Lagrange elements.
        solver: eigensolver settings (:class:`~mf_dmri.fem.ShiftInvertLanczos`; None: defaults).
        cluster_rtol: relative gap [-] under which eigenvalues form one (uncut) cluster.
        label: free text stored in the basis.

    Returns:
        A 2-D :class:`Eigenbasis` (moments (2, L, L) [m], volume = area [m^2], axes (2, 3)).
    """
    return cross_section_result(
        nodes,
        triangles,
        axes=axes,
        element_labels=element_labels,
        length_scale=length_scale,
        max_eigenvalue=max_eigenvalue,
        order=order,
        solver=solver,
        cluster_rtol=cluster_rtol,
        label=label,
    ).basis


def polygon_eigenbasis(
    vertices,
    *,
    mesh_size: float,
    axes=XY_PLANE,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    order: int = DEFAULT_ELEMENT_ORDER,
    solver: ShiftInvertLanczos | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    label: str = "",
) -> Eigenbasis:
    """Neumann eigenbasis of a simple polygon cross-section, triangulated at ``mesh_size``.

    Args:
        vertices: (P, 2) polygon corners in order [m] (not closed: no repeated first vertex).
        mesh_size: target triangle edge length h [m].
        axes: (2, 3) lab-frame unit vectors of the plane coordinates [-].
        length_scale: shortest wavelength kept ell [m]; lambda_max = (2 pi / ell)^2 [1/m^2].
        max_eigenvalue: the cutoff lambda_max [1/m^2] (instead of ``length_scale``).
        order: 1 (P1) or 2 (P2, the default) Lagrange elements.
        solver: eigensolver settings (:class:`~mf_dmri.fem.ShiftInvertLanczos`; None: defaults).
        cluster_rtol: relative gap [-] under which eigenvalues form one (uncut) cluster.
        label: free text stored in the basis.
    """
    nodes, triangles = triangulate_polygon(vertices, mesh_size)
    return cross_section_eigenbasis(
        nodes,
        triangles,
        axes=axes,
        length_scale=length_scale,
        max_eigenvalue=max_eigenvalue,
        order=order,
        solver=solver,
        cluster_rtol=cluster_rtol,
        label=label,
    )
