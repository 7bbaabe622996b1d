"""Meshes, gauge-invariant losses and finite differences for the tests/test_grad_* files."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from skfem import MeshTet, MeshTri

from mf_dmri.fem.differentiable import DifferentiableEigendata, differentiable_mesh_eigendata
from mf_dmri.fem.extension import boundary_nodes


def irregular_disk(refine: int = 1, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Elliptic disk (semi-axes 1 and 0.7) with randomly perturbed nodes: no degeneracy."""
    mesh = MeshTri.init_circle().refined(refine)
    rng = np.random.default_rng(seed)
    h = 2 * math.pi / 16 / 2**refine
    nodes = mesh.p.T * np.array([1.0, 0.7]) + 0.04 * h * rng.standard_normal(mesh.p.T.shape)
    return torch.tensor(nodes), mesh.t.T.copy()


def irregular_ellipsoid(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Ellipsoid (semi-axes 1, 0.8, 0.6) from the skfem ball, nodes randomly perturbed."""
    mesh = MeshTet.init_ball()
    rng = np.random.default_rng(seed)
    nodes = mesh.p.T * np.array([1.0, 0.8, 0.6]) + 0.01 * rng.standard_normal(mesh.p.T.shape)
    return torch.tensor(nodes), mesh.t.T.copy()


def symmetric_disk() -> tuple[torch.Tensor, np.ndarray]:
    """skfem's disk mesh: symmetric, with eigenvalue pairs equal to machine precision."""
    mesh = MeshTri.init_circle()
    return torch.tensor(mesh.p.T.copy()), mesh.t.T.copy()


def symmetric_cube() -> tuple[torch.Tensor, np.ndarray]:
    """Structured tetrahedral cube [-1, 1]^3 with exactly degenerate eigenvalue pairs."""
    grid = np.linspace(-1.0, 1.0, 6)
    mesh = MeshTet.init_tensor(grid, grid, grid)
    return torch.tensor(mesh.p.T.copy()), mesh.t.T.copy()


def eigendata(nodes: torch.Tensor, elements: np.ndarray, num_modes: int) -> DifferentiableEigendata:
    return differentiable_mesh_eigendata(nodes, elements, num_modes=num_modes)


def cluster_weights(
    data: DifferentiableEigendata, seed: int, group_rtol: float = 1e-2
) -> torch.Tensor:
    """Random weights (L,), constant on groups of eigenvalues closer than ``group_rtol``
    (relative to the largest): each group is a union of degenerate clusters, so losses
    weighted this way are gauge invariant, and near-degenerate pairs (gap ~1e-4) share a
    weight, which keeps the losses smooth on the finite-difference scale."""
    lam = data.eigenbasis.eigenvalues.detach().numpy()
    labels = np.concatenate([[0], np.cumsum(np.diff(lam) > group_rtol * lam[-1])])
    rng = np.random.default_rng(seed)
    per_group = torch.tensor(rng.uniform(0.5, 1.5, int(labels.max()) + 1))
    return per_group[torch.as_tensor(labels)]


def cluster_moment_loss(data: DifferentiableEigendata, weights: torch.Tensor) -> torch.Tensor:
    """sum_k sum_i w_i sum_j (Q_k)_ij^2 + sum_i w_i u_i^2: invariant under rotations inside
    every cluster when w is constant on clusters."""
    basis = data.eigenbasis
    rows = (basis.moments**2).sum(dim=(0, 2))
    return (weights * rows).sum() + (weights * basis.mode_integrals**2).sum()


def mf_signal(
    data: DifferentiableEigendata,
    direction: tuple[float, ...],
    *,
    use_coupling: bool = True,
    diffusivity: float = 1.0,
    time: float = 0.05,
    wavenumber: float = 6.0,
) -> torch.Tensor:
    """Matrix-formalism-like signal Re[u^T expm(-t (D Lambda + i c n.Q)) u] / V."""
    basis = data.eigenbasis
    lam = data.reduced_stiffness() if use_coupling else torch.diag_embed(basis.eigenvalues)
    n = torch.tensor(direction, dtype=torch.float64)
    moment = torch.einsum("k,kij->ij", n, basis.moments)
    generator = -time * (diffusivity * lam + 1j * wavenumber * moment)
    u = basis.mode_integrals.to(torch.complex128)
    return (u @ torch.linalg.matrix_exp(generator) @ u).real / basis.volume


def directional_derivatives(
    losses: Callable[[torch.Tensor], torch.Tensor],
    nodes: torch.Tensor,
    directions: list[tuple[torch.Tensor, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """Autograd and finite-difference derivatives (m, D) of the m losses returned by
    ``losses`` along each (direction, step) pair: 4-point central stencil, O(step^4)."""
    x = nodes.clone().requires_grad_(True)
    values = losses(x)
    grads = [torch.autograd.grad(values[i], x, retain_graph=True)[0] for i in range(values.numel())]
    exact = np.array([[float((g * v).sum()) for v, _ in directions] for g in grads])
    finite = np.zeros_like(exact)
    with torch.no_grad():
        for j, (v, step) in enumerate(directions):
            f = [losses(nodes + k * step * v).numpy() for k in (-2, -1, 1, 2)]
            finite[:, j] = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * step)
    return exact, finite


def fd_directions(
    nodes: torch.Tensor, elements: np.ndarray, count: int, seed: int
) -> list[tuple[torch.Tensor, float]]:
    """``count`` random directions in vertex space (unit RMS per coordinate, step 1e-5
    of the mesh size) plus one boundary vertex moved outwards and one interior vertex
    moved along x (step 1e-4 of the mesh size)."""
    size = float((nodes.max(0).values - nodes.min(0).values).max())
    gen = torch.Generator().manual_seed(seed)
    out = [
        (torch.randn(nodes.shape, generator=gen, dtype=torch.float64), 1e-5 * size)
        for _ in range(count)
    ]
    boundary = boundary_nodes(elements)
    interior = np.setdiff1d(np.arange(nodes.shape[0]), boundary)
    outer = int(boundary[seed % boundary.size])
    inner = int(interior[seed % interior.size])
    centre = nodes.mean(0)
    for vertex, v_dir in (
        (outer, nodes[outer] - centre),  # roughly normal to the boundary
        (inner, torch.eye(nodes.shape[1], dtype=torch.float64)[0]),
    ):
        v = torch.zeros_like(nodes)
        v[vertex] = v_dir / torch.linalg.vector_norm(v_dir)
        out.append((v, 1e-4 * size))
    return out


def relative_error(exact: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Per loss (rows), the largest per-direction relative error |exact - finite| /
    |finite|, the denominator floored at 1e-3 of that loss's largest |finite| (an
    interior vertex moves a smooth functional by ~0 and is compared on that scale)."""
    scale = np.maximum(np.abs(finite), 1e-3 * np.abs(finite).max(axis=1, keepdims=True))
    return (np.abs(exact - finite) / scale).max(axis=1)
