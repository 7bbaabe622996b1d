"""Harmonic extension: the surface vertices drive every node of a volume mesh.

The interior node displacement is the P1 harmonic extension of the boundary displacement
on the *reference* mesh: ``K_II u_I = -K_IB u_B`` with ``K`` the reference P1 stiffness,
one displacement component at a time.  The map ``u_B -> u_I`` is linear and fixed (the
sparse factorisation of ``K_II`` is computed once), so a user parameterises only the
surface; its adjoint is the same solve (``K_II`` is symmetric):
``grad u_B = -K_BI K_II^{-1} grad u_I``.

A rigid motion or a uniform scaling of the surface is reproduced exactly (P1 harmonic
extension reproduces every affine displacement), so the mesh quality only degrades for
genuinely non-affine surface changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch
from scipy.spatial import cKDTree

from mf_dmri._checks import DTYPE
from mf_dmri.fem.torch_assembly import assemble_p1, element_orientation


def boundary_nodes(elements: np.ndarray) -> np.ndarray:
    """Sorted indices of the nodes on the boundary facets (facets used by one element)."""
    el = np.asarray(elements)
    n = el.shape[1]
    facets = np.concatenate([np.delete(el, a, axis=1) for a in range(n)])
    facets = np.sort(facets, axis=1)
    unique, counts = np.unique(facets, axis=0, return_counts=True)
    return np.unique(unique[counts == 1])


@dataclass(frozen=True, eq=False)
class HarmonicExtension:
    """Fixed linear map from boundary-node positions to all node positions.

    Build it once per reference mesh with :meth:`from_mesh`; call it with the boundary
    positions (B, d) [m] ordered as ``boundary`` to get all nodes (N, d) [m].

    Args:
        reference_nodes: (N, d) reference node coordinates [m].
        elements: (E, d + 1) simplices.
        boundary: (B,) indices of the boundary nodes (the surface vertices).
        interior: (I,) indices of the other nodes.
        orientation: (E,) signs of det J on the reference mesh (inversion check).
        factor: sparse LU of the interior block K_II of the reference stiffness.
        coupling: the block K_IB (scipy CSR).
    """

    reference_nodes: np.ndarray
    elements: np.ndarray
    boundary: np.ndarray
    interior: np.ndarray
    orientation: np.ndarray
    factor: Any = field(repr=False)
    coupling: Any = field(repr=False)

    @classmethod
    def from_mesh(cls, nodes: np.ndarray, elements: np.ndarray) -> HarmonicExtension:
        """Extension for the reference mesh ``nodes`` (N, d) [m], ``elements`` (E, d + 1)."""
        x = np.array(nodes, dtype=np.float64)
        el = np.array(elements, dtype=np.int64)
        matrices = assemble_p1(torch.as_tensor(x), el)
        stiffness = matrices.to_scipy(matrices.stiffness).tocsr()
        boundary = boundary_nodes(el)
        interior = np.setdiff1d(np.arange(len(x)), boundary)
        if interior.size == 0:
            raise ValueError("the reference mesh has no interior node; nothing to extend")
        factor = spla.splu(stiffness[interior][:, interior].tocsc())
        coupling = stiffness[interior][:, boundary].tocsr()
        return cls(
            reference_nodes=x,
            elements=el,
            boundary=boundary,
            interior=interior,
            orientation=element_orientation(x, el),
            factor=factor,
            coupling=coupling,
        )

    @property
    def num_boundary(self) -> int:
        """Number B of boundary nodes (surface vertices)."""
        return int(self.boundary.size)

    def boundary_order(self, points: np.ndarray, atol: float) -> np.ndarray:
        """For surface vertices ``points`` (B, d) [m] that coincide (within ``atol`` [m])
        with the boundary nodes in another order, the permutation ``perm`` such that
        ``points[perm]`` is ordered as ``self.boundary``."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape != (self.num_boundary, self.reference_nodes.shape[1]):
            raise ValueError(
                f"points must have shape ({self.num_boundary}, "
                f"{self.reference_nodes.shape[1]}), got {pts.shape}"
            )
        dist, perm = cKDTree(pts).query(self.reference_nodes[self.boundary])
        if dist.max() > atol or np.unique(perm).size != perm.size:
            raise ValueError(
                f"the points do not match the boundary nodes within {atol:g} m "
                f"(worst distance {dist.max():.3g} m); pass the mesh's surface"
            )
        return perm

    def __call__(self, boundary_positions: torch.Tensor) -> torch.Tensor:
        """All node positions (N, d) [m] for boundary positions (B, d) [m] (differentiable)."""
        ref = torch.as_tensor(self.reference_nodes, dtype=DTYPE, device=boundary_positions.device)
        if boundary_positions.shape != (self.num_boundary, ref.shape[1]):
            raise ValueError(
                f"boundary positions must have shape ({self.num_boundary}, "
                f"{ref.shape[1]}) ordered as HarmonicExtension.boundary, got "
                f"{tuple(boundary_positions.shape)}"
            )
        if boundary_positions.dtype != DTYPE:
            raise TypeError("boundary positions must be float64 [m]")
        boundary_idx = torch.as_tensor(self.boundary, device=ref.device)
        interior_idx = torch.as_tensor(self.interior, device=ref.device)
        shift = boundary_positions - ref[boundary_idx]
        inner = _ExtendFunction.apply(shift, self)
        displacement = torch.zeros_like(ref).index_copy(0, boundary_idx, shift)
        displacement = displacement.index_copy(0, interior_idx, inner)
        return ref + displacement


class _ExtendFunction(torch.autograd.Function):
    """Boundary displacement (B, d) -> interior displacement (I, d) = -K_II^-1 K_IB u_B."""

    @staticmethod
    def forward(ctx, shift: torch.Tensor, extension: HarmonicExtension):  # noqa: D102
        ctx.extension = extension
        u_b = shift.detach().cpu().numpy()
        u_i = -extension.factor.solve(np.asarray(extension.coupling @ u_b))
        return torch.as_tensor(u_i, dtype=DTYPE, device=shift.device)

    @staticmethod
    def backward(ctx, grad_inner: torch.Tensor):  # noqa: D102
        ext = ctx.extension
        adjoint = ext.factor.solve(grad_inner.detach().cpu().numpy())
        grad = -(ext.coupling.T @ adjoint)
        return torch.as_tensor(grad, dtype=DTYPE, device=grad_inner.device), None
