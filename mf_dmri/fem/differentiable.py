"""Eigenbases of P1 meshes that are differentiable with respect to the node coordinates.

P1 only, whatever :data:`~mf_dmri.fem.DEFAULT_ELEMENT_ORDER` says for
:func:`~mf_dmri.fem.mesh_eigenbasis`: the matrices are assembled in torch for P1
(:mod:`mf_dmri.fem.torch_assembly`), and P2 node derivatives would also need the
edge-midpoint dofs moved with the vertices (not implemented).

``differentiable_mesh_eigenbasis(nodes, elements, num_modes=...)`` returns an
:class:`~mf_dmri.eigenbasis.Eigenbasis` whose eigenvalues, moments, mode integrals and
volume carry autograd history to ``nodes`` (torch float64, [m]), so the gradient of any
signal with respect to any parameterisation of the nodes follows by autograd (a radius r:
``nodes = r * unit_nodes``; a surface: :func:`surface_driven_eigenbasis`).

Exactness inside degenerate clusters: the first derivative of the eigen-data is exact for
every loss that depends on the data of each degenerate cluster only through quantities
invariant under rotations inside the cluster, *and* that sees the reduced stiffness
``diag(lambda) + coupling`` (use :func:`differentiable_mesh_eigendata`), because the
within-cluster off-diagonal part of the reduced stiffness varies at first order although
it is zero in value.  A loss that uses only ``eigenvalues`` is exact when the spectrum has
no degenerate cluster, or when its derivative with respect to that off-diagonal block
vanishes (e.g. symmetric functions of the eigenvalues, cluster sums of moment norms); see
docs/eigen_derivatives.md for the argument and a counterexample (matrix-formalism signal
on an exactly symmetric disk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.eigenbasis import CLUSTER_RTOL, Eigenbasis
from mf_dmri.fem.eigen_backward import EigenFunction, EigenSpec
from mf_dmri.fem.extension import HarmonicExtension
from mf_dmri.fem.torch_assembly import assemble_p1, check_mesh_arrays


@dataclass(frozen=True)
class DifferentiableEigendata:
    """An eigenbasis plus the zero-valued within-cluster coupling of its reduced stiffness.

    Args:
        eigenbasis: the :class:`Eigenbasis` (tensors carry autograd history to the nodes).
        coupling: (L, L) [1/m^2], zero in value; its derivative is the within-cluster
            off-diagonal variation of ``Phi^T K Phi`` (zero across clusters).
        cluster_labels: (L,) int64 label of the degenerate cluster of each mode.
    """

    eigenbasis: Eigenbasis
    coupling: torch.Tensor
    cluster_labels: torch.Tensor

    def __post_init__(self) -> None:
        count = self.eigenbasis.num_modes
        if self.coupling.shape != (count, count):
            raise ValueError(f"coupling must have shape ({count}, {count})")
        if self.cluster_labels.shape != (count,):
            raise ValueError(f"cluster_labels must have shape ({count},)")

    def reduced_stiffness(self) -> torch.Tensor:
        """``diag(eigenvalues) + coupling`` (L, L) [1/m^2]: use it in place of
        ``diag(eigenvalues)`` for derivatives exact inside degenerate clusters."""
        return torch.diag_embed(self.eigenbasis.eigenvalues) + self.coupling


def differentiable_mesh_eigendata(
    nodes: torch.Tensor,
    elements: np.ndarray | torch.Tensor,
    *,
    num_modes: int | None = None,
    max_eigenvalue: float | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    orientation: np.ndarray | None = None,
    label: str = "",
) -> DifferentiableEigendata:
    """Differentiable P1 Neumann eigen-data of a triangle (2-D) or tetrahedron (3-D) mesh.

    Args:
        nodes: (N, d) node coordinates [m], float64 torch tensor (may require grad).
        elements: (E, d + 1) node indices of each simplex.
        num_modes: keep at least this many modes, zero mode(s) included (the count is
            extended to the end of a degenerate cluster it would cut).
        max_eigenvalue: alternatively keep every mode with eigenvalue <= this [1/m^2].
        cluster_rtol: relative eigenvalue gap [-] (to the largest kept eigenvalue) below
            which modes form one degenerate cluster.
        orientation: optional (E,) reference signs of det J; an element whose sign
            changed (inverted by the displacement) raises.
        label: free text naming the shape.

    Returns:
        :class:`DifferentiableEigendata`; ``eigenbasis.axes`` is the identity frame.
    """
    el = check_mesh_arrays(nodes, elements)
    matrices = assemble_p1(nodes, el, orientation)
    el_np = el.cpu().numpy()
    spec = EigenSpec(
        elements=el_np,
        num_nodes=int(nodes.shape[0]),
        num_modes=num_modes,
        max_eigenvalue=max_eigenvalue,
        cluster_rtol=cluster_rtol,
    )
    eigenvalues, coupling, moments, integrals = EigenFunction.apply(
        matrices.stiffness, matrices.mass, matrices.moments, spec
    )
    dim = matrices.dimension
    axes = torch.eye(dim, 3, dtype=DTYPE, device=nodes.device)
    basis = Eigenbasis(
        eigenvalues=eigenvalues,
        moments=moments,
        mode_integrals=integrals,
        volume=matrices.volume(),
        axes=axes,
        label=label,
        stiffness_coupling=coupling,
    )
    lam = eigenvalues.detach()
    scale = max(float(lam[-1]), 1e-300)
    gaps = (lam[1:] - lam[:-1]) > cluster_rtol * scale
    labels = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(gaps.long(), 0)])
    return DifferentiableEigendata(
        eigenbasis=basis, coupling=coupling, cluster_labels=labels.to(nodes.device)
    )


def differentiable_mesh_eigenbasis(
    nodes: torch.Tensor,
    elements: np.ndarray | torch.Tensor,
    *,
    num_modes: int | None = None,
    max_eigenvalue: float | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    orientation: np.ndarray | None = None,
    label: str = "",
) -> Eigenbasis:
    """The :class:`Eigenbasis` of :func:`differentiable_mesh_eigendata` (same arguments:
    nodes (N, d) [m], max_eigenvalue [1/m^2]); see the module docstring for exactness
    inside degenerate clusters."""
    return differentiable_mesh_eigendata(
        nodes,
        elements,
        num_modes=num_modes,
        max_eigenvalue=max_eigenvalue,
        cluster_rtol=cluster_rtol,
        orientation=orientation,
        label=label,
    ).eigenbasis


def surface_driven_eigendata(
    surface_vertices: torch.Tensor,
    extension: HarmonicExtension,
    *,
    num_modes: int | None = None,
    max_eigenvalue: float | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    label: str = "",
) -> DifferentiableEigendata:
    """Eigen-data of the reference volume mesh with its boundary moved to
    ``surface_vertices`` (B, d) [m] (ordered as ``extension.boundary``) and its interior
    nodes moved by harmonic extension; differentiable w.r.t. ``surface_vertices``.
    ``max_eigenvalue`` [1/m^2]; the other arguments as in
    :func:`differentiable_mesh_eigendata`."""
    nodes = extension(surface_vertices)
    return differentiable_mesh_eigendata(
        nodes,
        extension.elements,
        num_modes=num_modes,
        max_eigenvalue=max_eigenvalue,
        cluster_rtol=cluster_rtol,
        orientation=extension.orientation,
        label=label,
    )


def surface_driven_eigenbasis(
    surface_vertices: torch.Tensor,
    reference_volume_mesh: HarmonicExtension,
    *,
    num_modes: int | None = None,
    max_eigenvalue: float | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    label: str = "",
) -> Eigenbasis:
    """The :class:`Eigenbasis` of :func:`surface_driven_eigendata`.

    Args:
        surface_vertices: (B, d) boundary node positions [m], ordered as
            ``reference_volume_mesh.boundary``.
        reference_volume_mesh: a :class:`HarmonicExtension` built once with
            ``HarmonicExtension.from_mesh(nodes, elements)`` (it holds the factorisation).
        num_modes, max_eigenvalue [1/m^2], cluster_rtol, label: as in
            :func:`differentiable_mesh_eigendata`.
    """
    if not isinstance(reference_volume_mesh, HarmonicExtension):
        raise TypeError(
            "reference_volume_mesh must be a HarmonicExtension; build it once "
            "with HarmonicExtension.from_mesh(mesh.nodes, mesh.elements)"
        )
    return surface_driven_eigendata(
        surface_vertices,
        reference_volume_mesh,
        num_modes=num_modes,
        max_eigenvalue=max_eigenvalue,
        cluster_rtol=cluster_rtol,
        label=label,
    ).eigenbasis
