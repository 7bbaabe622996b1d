"""Tube shape space (radius and centreline Legendre modes of a straight capped cylinder)."""

import numpy as np
import pytest
import torch
from test_inverse_helpers import single_thread  # noqa: F401

from mf_dmri.geometry import beaded_axon, cylinder, tetrahedralize, undulating_axon
from mf_dmri.inverse import PGSEProtocol, TubeShapeSpace
from mf_dmri.inverse.reconstruct import _folds, reconstruct_shape, shape_distance, shape_signal
from mf_dmri.inverse.remesh import min_radius_ratio, remeshed_space
from mf_dmri.units import ms, um

pytestmark = pytest.mark.usefixtures("single_thread")
RADIUS, LENGTH = 2 * um, 10 * um


@pytest.fixture(scope="module")
def mesh():
    return tetrahedralize(cylinder(RADIUS, LENGTH, segments=12), length_scale=1.2 * um)


def space_of(mesh, radius_modes=5, centreline_modes=4):
    return TubeShapeSpace.from_volume_mesh(
        mesh.nodes,
        mesh.elements,
        radius=RADIUS,
        radius_modes=radius_modes,
        centreline_modes=centreline_modes,
    )


def test_zero_coefficients_give_the_reference(mesh):
    space = space_of(mesh)
    vertices = space.vertices(torch.zeros(space.num_modes)).numpy()
    np.testing.assert_allclose(vertices, mesh.nodes[space.extension.boundary], atol=1e-18)
    assert space.surface(torch.zeros(space.num_modes)).signed_volume() == pytest.approx(
        mesh.volume(), rel=1e-12
    )


def test_uniform_radius_and_tilt_change_the_volume_as_affine_maps(mesh):
    """a_0 scales every cross-section by (1 + a_0): V = (1 + a_0)^2 V_ref.  A pure P_1
    centreline mode u = R0 b (2 s - 1) is the affine map with Jacobian determinant
    t . (slope, 0, 1) = sqrt(1 + slope^2), slope = 2 R0 b / L: V = V_ref sqrt(1 + slope^2)."""
    space = space_of(mesh)
    reference = space.surface(torch.zeros(space.num_modes)).signed_volume()
    c = torch.zeros(space.num_modes, dtype=torch.float64)
    c[0] = 0.2
    assert space.surface(c).signed_volume() == pytest.approx(1.2**2 * reference, rel=1e-12)
    c = torch.zeros(space.num_modes, dtype=torch.float64)
    c[space.radius_modes] = 0.7
    slope = 2 * RADIUS * 0.7 / LENGTH
    tilted = space.surface(c).signed_volume()
    assert tilted == pytest.approx(np.sqrt(1 + slope**2) * reference, rel=1e-12)


def test_projected_profiles_reproduce_the_generators(mesh):
    """Legendre profiles of degree 4 fitted to the generators' radius and centreline
    functions give surfaces within 5 % of the radius of the generators' meshes (measured:
    Chamfer 0.065 um, 12 % of the straight start, for the undulating one)."""
    space = space_of(mesh)
    beads = beaded_axon(RADIUS, LENGTH, 0.25, 8 * um, segments=24)
    best = space.project(
        lambda z: RADIUS * (1 + 0.25 * np.sin(2 * np.pi * z / (8 * um))),
        lambda z: 0 * z,
        lambda z: 0 * z,
    )
    start = shape_distance(space.surface(torch.zeros(space.num_modes)), beads)
    fitted = shape_distance(space.surface(best), beads)
    assert fitted.chamfer < 0.2 * start.chamfer and fitted.chamfer < 0.05 * RADIUS
    wave = undulating_axon(RADIUS, LENGTH, 1.5 * um, 12 * um, segments=24)
    best = space.project(
        lambda z: RADIUS + 0 * z, lambda z: 1.5 * um * np.sin(2 * np.pi * z / (12 * um)), None
    )
    start = shape_distance(space.surface(torch.zeros(space.num_modes)), wave)
    fitted = shape_distance(space.surface(best), wave)
    assert fitted.chamfer < 0.15 * start.chamfer and fitted.chamfer < 0.05 * RADIUS


def test_tube_signal_gradient_matches_finite_differences(mesh):
    space = space_of(mesh, radius_modes=3, centreline_modes=2)
    directions = torch.tensor([[1.0, 0, 0], [0.0, 0.6, 0.8]], dtype=torch.float64)
    groups = PGSEProtocol([10 * ms], [30 * ms], [0.15], directions).piece_groups()
    point = torch.tensor([0.05, -0.1, 0.08, 0.3, -0.2, 0.1, 0.25], dtype=torch.float64)
    c = point.clone().requires_grad_(True)
    values, _ = shape_signal(space, c, groups, 2e-9, 20)
    (gradient,) = torch.autograd.grad(values.sum(), c)
    step = 1e-5
    for k in range(space.num_modes):
        e = torch.zeros(space.num_modes, dtype=torch.float64)
        e[k] = step
        plus = shape_signal(space, point + e, groups, 2e-9, 20)[0].sum()
        minus = shape_signal(space, point - e, groups, 2e-9, 20)[0].sum()
        central = float((plus - minus) / (2 * step))
        assert float(gradient[k]) == pytest.approx(central, rel=1e-4, abs=1e-7), k


def test_quality_guard_flags_squeezed_tetrahedra(mesh):
    space = space_of(mesh)
    c = torch.zeros(space.num_modes, dtype=torch.float64)
    c[0] = -0.5  # every tetrahedron keeps 25 % of its volume
    assert not _folds(space, c)
    c[0] = -0.9  # 1 %: below MIN_VOLUME_RATIO (5 %)
    assert _folds(space, c)


def test_reconstruction_returns_the_lowest_loss_iterate_and_checks_step_scale(mesh):
    space = space_of(mesh, radius_modes=2, centreline_modes=1)
    directions = torch.eye(3, dtype=torch.float64)
    protocol = PGSEProtocol([10 * ms], [30 * ms], [0.2], directions)
    truth = torch.tensor([0.1, 0.0, 0.0, 0.0], dtype=torch.float64)
    data = shape_signal(space, truth, protocol.piece_groups(), 2e-9, 20)[0].detach()
    result = reconstruct_shape(
        space, protocol, data, diffusivity=2e-9, num_modes=20, smoothness=0.0,
        iterations=6, learning_rate=0.05, step_scale=torch.tensor([1.0, 0.5, 1.0, 1.0]),
    )  # fmt: skip
    final = ((result.predicted - data) ** 2).sum() / (2 * 0.01**2)
    assert float(final) <= min(result.misfit_history) + 1e-9
    assert float(final) < 0.1 * result.misfit_history[0]
    with pytest.raises(ValueError, match="step_scale"):
        reconstruct_shape(
            space, protocol, data, diffusivity=2e-9, iterations=1, step_scale=torch.ones(3)
        )


def test_tube_space_errors_are_clear(mesh):
    with pytest.raises(ValueError, match="radius_modes"):
        space_of(mesh, radius_modes=0)
    with pytest.raises(ValueError, match="beyond radius"):
        TubeShapeSpace.from_volume_mesh(
            mesh.nodes, mesh.elements, radius=0.5 * RADIUS, radius_modes=2, centreline_modes=1
        )
    with pytest.raises(ValueError, match="shape"):
        space_of(mesh).vertices(torch.zeros(3))


def test_coarse_coefficients_carry_over_to_a_finer_space_exactly(mesh):
    coarse = space_of(mesh, radius_modes=2, centreline_modes=1)
    fine = coarse.with_modes(4, 3)
    assert fine.extension is coarse.extension
    c = torch.tensor([0.1, -0.05, 0.4, -0.3], dtype=torch.float64)
    moved = fine.coefficients_from(coarse, c)
    assert moved.shape == (fine.num_modes,)
    np.testing.assert_allclose(fine.vertices(moved).numpy(), coarse.vertices(c).numpy())
    back = coarse.coefficients_from(fine, moved)
    np.testing.assert_array_equal(back.numpy(), c.numpy())


def test_remeshed_tube_keeps_surface_volume_and_coefficients(mesh):
    """Re-tetrahedralising a tube with thin ends (squeezed interior tetrahedra) keeps its
    surface vertices and volume exactly, raises the worst radius ratio, and the same
    coefficients still describe the same shape (the signal changes only by discretisation)."""
    space = space_of(mesh)
    c = torch.zeros(space.num_modes, dtype=torch.float64)
    c[2] = -0.5  # P_2 radius profile: thick middle, thin ends
    fresh = remeshed_space(space, c)
    assert torch.equal(fresh.vertices(c), space.vertices(c))
    assert min_radius_ratio(fresh, c) > min_radius_ratio(space, c)
    directions = torch.eye(3, dtype=torch.float64)
    groups = PGSEProtocol([10 * ms], [30 * ms], [0.1], directions).piece_groups()
    old, old_volume = shape_signal(space, c, groups, 2e-9, 20)
    new, new_volume = shape_signal(fresh, c, groups, 2e-9, 20)
    assert float(new_volume) == pytest.approx(float(old_volume), rel=1e-12)
    assert 0 < float((new - old).abs().max()) < 1e-2
