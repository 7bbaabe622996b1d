"""Surface-driven meshes: the harmonic extension and gradients w.r.t. surface vertices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grad_helpers import directional_derivatives, mf_signal, relative_error
from skfem import MeshTet, MeshTri

from mf_dmri.fem.differentiable import surface_driven_eigenbasis, surface_driven_eigendata
from mf_dmri.fem.extension import HarmonicExtension, boundary_nodes


def test_boundary_nodes_of_the_ball_are_on_the_unit_sphere():
    mesh = MeshTet.init_ball()
    boundary = boundary_nodes(mesh.t.T)
    radii = np.linalg.norm(mesh.p.T, axis=1)
    np.testing.assert_allclose(radii[boundary], 1.0, atol=1e-12)
    assert np.setdiff1d(np.flatnonzero(np.abs(radii - 1) < 1e-9), boundary).size == 0


@pytest.mark.parametrize("mesh", [MeshTet.init_ball(), MeshTri.init_circle()], ids=["ball", "disk"])
def test_affine_surface_motion_moves_every_node_affinely(mesh):
    """P1 harmonic extension reproduces affine displacements exactly (each component of
    an affine map is discretely harmonic: its P1 stiffness residual vanishes)."""
    ext = HarmonicExtension.from_mesh(mesh.p.T, mesh.t.T)
    dim = mesh.p.shape[0]
    rng = np.random.default_rng(0)
    matrix = np.eye(dim) + 0.2 * rng.standard_normal((dim, dim))
    offset = rng.standard_normal(dim)
    target = mesh.p.T @ matrix.T + offset
    nodes = ext(torch.tensor(target[ext.boundary]))
    np.testing.assert_allclose(nodes.numpy(), target, atol=1e-12)


def test_extension_gradcheck():
    mesh = MeshTet.init_tensor(*[np.linspace(0.0, 1.0, 4)] * 3)
    ext = HarmonicExtension.from_mesh(mesh.p.T, mesh.t.T)
    rng = np.random.default_rng(1)
    surface = torch.tensor(
        mesh.p.T[ext.boundary] + 0.01 * rng.standard_normal((ext.num_boundary, 3)),
        requires_grad=True,
    )
    assert torch.autograd.gradcheck(ext, (surface,), eps=1e-6, atol=1e-9)


def test_surface_gradients_match_finite_differences():
    mesh = MeshTet.init_ball()
    ext = HarmonicExtension.from_mesh(mesh.p.T, mesh.t.T)
    surface0 = mesh.p.T[ext.boundary]
    # a non-affine reference surface: an ellipsoid with a bump
    x, y, z = surface0.T
    bumped = surface0 * np.array([1.0, 0.8, 0.6]) + 0.05 * np.stack([x * y, y * z, z * x], 1)
    surface = torch.tensor(bumped)
    weights = torch.linspace(1.0, 2.0, 10, dtype=torch.float64)

    def losses(s):
        data = surface_driven_eigendata(s, ext, num_modes=10)
        lam = data.eigenbasis.eigenvalues
        return torch.stack([(weights * lam).sum(), 10 * mf_signal(data, (0.48, 0.6, 0.64))])

    gen = torch.Generator().manual_seed(0)
    directions = [
        (torch.randn(surface.shape, generator=gen, dtype=torch.float64), 1e-5) for _ in range(2)
    ]
    one_vertex = torch.zeros_like(surface)
    one_vertex[7] = surface[7] / torch.linalg.vector_norm(surface[7])
    directions.append((one_vertex, 1e-4))
    exact, finite = directional_derivatives(losses, surface, directions)
    errors = relative_error(exact, finite)
    assert (errors < 1e-5).all(), (errors, exact, finite)


def test_radius_through_the_surface():
    """Scaling the surface scales every node (affine reproduction): d lambda / dr is
    -2 lambda / r exactly."""
    mesh = MeshTri.init_circle()
    ext = HarmonicExtension.from_mesh(mesh.p.T, mesh.t.T)
    radius = torch.tensor(2e-6, dtype=torch.float64, requires_grad=True)
    basis = surface_driven_eigenbasis(
        radius * torch.tensor(mesh.p.T[ext.boundary]), ext, num_modes=6
    )
    lam = basis.eigenvalues
    (deriv,) = torch.autograd.grad(lam[1:].sum(), radius)
    expected = -2 * float(lam[1:].sum().detach()) / 2e-6
    # exact up to the rounding of the K_II solve (condition number ~ 1/h^2)
    assert float(deriv) == pytest.approx(expected, rel=1e-10)


def test_mismatched_inputs_raise():
    mesh = MeshTri.init_circle()
    ext = HarmonicExtension.from_mesh(mesh.p.T, mesh.t.T)
    with pytest.raises(ValueError, match="ordered as HarmonicExtension.boundary"):
        ext(torch.zeros(ext.num_boundary + 1, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="HarmonicExtension.from_mesh"):
        surface_driven_eigenbasis(torch.zeros(3, 2, dtype=torch.float64), mesh, num_modes=4)
    points = mesh.p.T[ext.boundary]
    perm = np.random.default_rng(0).permutation(ext.num_boundary)
    order = ext.boundary_order(points[perm], atol=1e-12)
    np.testing.assert_array_equal(points[perm][order], points)
    with pytest.raises(ValueError, match="do not match"):
        ext.boundary_order(points * 1.1, atol=1e-12)
