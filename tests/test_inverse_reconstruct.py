"""Shape space, shape distances and derivatives for free-form reconstruction."""

import numpy as np
import pytest
import torch
from test_inverse_helpers import single_thread  # noqa: F401

from mf_dmri.geometry import SurfaceMesh, sphere, tetrahedralize
from mf_dmri.inverse import PGSEProtocol
from mf_dmri.inverse.reconstruct import reconstruct_shape, shape_distance, shape_signal
from mf_dmri.inverse.shape_space import SurfaceShapeSpace
from mf_dmri.units import ms, um

pytestmark = pytest.mark.usefixtures("single_thread")
RADIUS = 4 * um


@pytest.fixture(scope="module")
def space():
    mesh = tetrahedralize(sphere(RADIUS, subdivisions=2), length_scale=1.5 * um)
    return SurfaceShapeSpace.from_volume_mesh(mesh.nodes, mesh.elements, num_modes=6), mesh


def test_reference_surface_is_outward_and_encloses_the_mesh(space):
    shape, mesh = space
    surface = shape.surface(torch.zeros(6))
    tets = mesh.nodes[mesh.elements]
    volume = (
        np.abs(
            np.einsum(
                "ei,ei->e",
                tets[:, 1] - tets[:, 0],
                np.cross(tets[:, 2] - tets[:, 0], tets[:, 3] - tets[:, 0]),
            )
        ).sum()
        / 6
    )
    assert surface.signed_volume() == pytest.approx(volume, rel=1e-12)


def test_modes_are_translation_free_orthonormal_and_spherical_harmonic_like(space):
    """On a sphere the Laplace-Beltrami eigenvalues are l (l + 1) / R^2 (l = 0, 2 kept, l = 1
    removed as translations); a P1 surface of 162 vertices gets them within a few %."""
    shape, _ = space
    modes, normals = shape.modes.numpy(), shape.normals.numpy()
    weights = np.full(len(modes), 1.0 / len(modes))  # near-uniform areas on an icosphere
    cross = modes.T @ (weights[:, None] * normals)
    assert np.abs(cross).max() < 0.05
    gram = modes.T @ (weights[:, None] * modes)
    np.testing.assert_allclose(gram, np.eye(6), atol=0.05)
    frequencies = shape.frequencies.numpy() * RADIUS**2
    assert frequencies[0] == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(frequencies[1:], 6.0, rtol=0.05)


def test_shape_distance_removes_translation_and_point_reflection():
    rng = np.random.default_rng(0)
    base = sphere(RADIUS, subdivisions=2)
    vertices = np.asarray(base.vertices)
    bumpy = vertices * (
        1 + 0.2 * (vertices[:, :1] > 0) * (vertices[:, 1:2] > 0)
    )  # no central symmetry
    shape = SurfaceMesh(bumpy, np.asarray(base.faces))
    moved = SurfaceMesh(-bumpy + rng.normal(size=3) * um, np.asarray(base.faces)[:, [0, 2, 1]])
    distance = shape_distance(shape, moved)
    assert distance.reflected
    assert distance.chamfer < 1e-3 * RADIUS and distance.hausdorff < 1e-3 * RADIUS
    bigger = SurfaceMesh(vertices * 1.1, np.asarray(base.faces))
    spheres = shape_distance(SurfaceMesh(vertices, np.asarray(base.faces)), bigger)
    assert spheres.hausdorff == pytest.approx(0.1 * RADIUS, rel=0.15)


def test_shape_signal_gradient_matches_finite_differences(space):
    shape, _ = space
    directions = torch.tensor([[1.0, 0, 0], [0.0, 0.6, 0.8]], dtype=torch.float64)
    groups = PGSEProtocol([10 * ms], [30 * ms], [0.12], directions).piece_groups()
    point = torch.tensor([0.01, 0.05, -0.03, 0.02, 0.04, -0.02], dtype=torch.float64)
    c = point.clone().requires_grad_(True)
    values, _ = shape_signal(shape, c, groups, 2e-9, 20)
    (gradient,) = torch.autograd.grad(values.sum(), c)
    step = 1e-5
    for k in range(6):
        e = torch.zeros(6, dtype=torch.float64)
        e[k] = step
        plus = shape_signal(shape, point + e, groups, 2e-9, 20)[0].sum()
        minus = shape_signal(shape, point - e, groups, 2e-9, 20)[0].sum()
        central = float((plus - minus) / (2 * step))
        assert float(gradient[k]) == pytest.approx(central, rel=1e-4, abs=1e-7), k


def test_reconstruction_errors_are_clear(space):
    shape, _ = space
    protocol = PGSEProtocol([10 * ms], [30 * ms], [0.1], torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        reconstruct_shape(shape, protocol, torch.full((3,), float("nan")), diffusivity=2e-9)
    with pytest.raises(ValueError, match="reference_volume"):
        reconstruct_shape(shape, protocol, torch.ones(3), diffusivity=2e-9, volume_weight=1.0)
    with pytest.raises(ValueError, match="measurements"):
        reconstruct_shape(shape, protocol, torch.ones(4), diffusivity=2e-9, iterations=1)
    with pytest.raises(ValueError, match="optimiser"):
        reconstruct_shape(shape, protocol, torch.ones(3), diffusivity=2e-9, optimiser="sgd")
    with pytest.raises(ValueError, match="num_modes"):
        SurfaceShapeSpace.from_volume_mesh(space[1].nodes, space[1].elements, num_modes=0)
