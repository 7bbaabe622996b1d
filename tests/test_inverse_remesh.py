"""Re-tetrahedralisation during free-form shape reconstruction (mf_dmri.inverse.remesh)."""

import numpy as np
import pytest
import torch
from test_inverse_helpers import single_thread  # noqa: F401

from mf_dmri.geometry import sphere, tetrahedralize
from mf_dmri.inverse import PGSEProtocol
from mf_dmri.inverse.reconstruct import reconstruct_shape, shape_signal
from mf_dmri.inverse.remesh import remeshed_space
from mf_dmri.inverse.shape_space import SurfaceShapeSpace
from mf_dmri.units import ms, um

pytestmark = pytest.mark.usefixtures("single_thread")
RADIUS = 4 * um
DIFFUSIVITY = 2e-9
#: a large non-affine deformation: the harmonic extension of the reference mesh folds
LARGE = torch.tensor([0.0, 0.24, 0.0, 0.0, 0.0, 0.18], dtype=torch.float64)


@pytest.fixture(scope="module")
def space():
    mesh = tetrahedralize(sphere(RADIUS, subdivisions=2), length_scale=1.5 * um)
    return SurfaceShapeSpace.from_volume_mesh(mesh.nodes, mesh.elements, num_modes=6)


@pytest.fixture(scope="module")
def protocol():
    directions = torch.tensor(
        [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.6, 0.8, 0], [0, 0.6, 0.8], [0.8, 0, 0.6]],
        dtype=torch.float64,
    )
    return PGSEProtocol([10 * ms] * 2, [30 * ms] * 2, [0.1, 0.2], directions)


def test_remesh_keeps_the_surface_and_changes_the_signal_only_by_discretisation(space, protocol):
    """The remeshed space maps the same coefficients to the same surface vertices and
    volume; its signal differs from the old mesh's by less than either differs from a
    fine mesh of the same polyhedron (the FEM discretisation error of the coarse meshes)."""
    c = 0.25 * LARGE / 0.6
    fresh = remeshed_space(space, c)
    assert torch.equal(fresh.vertices(c), space.vertices(c))
    assert not np.array_equal(fresh.extension.elements, space.extension.elements)
    groups = protocol.piece_groups()
    old, old_volume = shape_signal(space, c, groups, DIFFUSIVITY, 20)
    new, new_volume = shape_signal(fresh, c, groups, DIFFUSIVITY, 20)
    assert float(new_volume) == pytest.approx(float(old_volume), rel=1e-12)
    fine_mesh = tetrahedralize(space.surface(c), length_scale=0.6 * um)
    fine = SurfaceShapeSpace.from_volume_mesh(fine_mesh.nodes, fine_mesh.elements, num_modes=6)
    reference, _ = shape_signal(fine, torch.zeros(6, dtype=torch.float64), groups, DIFFUSIVITY, 20)
    change = float((new - old).abs().max())
    discretisation = max(float((old - reference).abs().max()), float((new - reference).abs().max()))
    assert 0 < change < discretisation < 2e-2


@pytest.mark.xfail(
    strict=False,
    reason="known fragility: whether the fixed-mesh optimisation folds depends on the "
    "trajectory, which differs with the test order (it folds in the full suite, not alone)",
)
def test_reconstruction_remeshes_and_carries_on_where_a_fixed_mesh_folds(space, protocol):
    target_space = remeshed_space(space, LARGE)
    target, _ = shape_signal(target_space, LARGE, protocol.piece_groups(), DIFFUSIVITY, 20)
    options = dict(
        diffusivity=DIFFUSIVITY, num_modes=20, smoothness=0.0, iterations=30, learning_rate=0.05
    )
    with pytest.raises(FloatingPointError, match="folds"):
        reconstruct_shape(space, protocol, target, **options)
    threshold = 0.02
    result = reconstruct_shape(space, protocol, target, remesh_quality=threshold, **options)
    quality = np.array(result.quality_history)
    assert len(quality) == 30 and len(result.loss_history) == 30
    assert result.remeshes >= 1
    assert result.remeshes == int((quality < threshold).sum())
    assert quality[-1] >= threshold
    last = int(np.nonzero(quality < threshold)[0][-1])
    assert last < 29  # steps were taken on the new mesh
    losses = np.array(result.loss_history)
    assert losses[last + 1 :].min() < 0.1 * losses[0]
    coefficient_error = float((result.coefficients - LARGE).abs().max())
    assert coefficient_error < 0.1


def test_no_remesh_above_the_threshold_leaves_the_optimisation_unchanged(space, protocol):
    c = 0.25 * LARGE / 0.6
    target, _ = shape_signal(space, c, protocol.piece_groups(), DIFFUSIVITY, 20)
    options = dict(diffusivity=DIFFUSIVITY, num_modes=20, iterations=4, learning_rate=0.02)
    plain = reconstruct_shape(space, protocol, target, **options)
    watched = reconstruct_shape(space, protocol, target, remesh_quality=1e-4, **options)
    assert watched.remeshes == 0 and plain.remeshes == 0
    assert watched.loss_history == plain.loss_history
    assert len(watched.quality_history) == 4 and min(watched.quality_history) > 1e-4
    with pytest.raises(ValueError, match="adam"):
        reconstruct_shape(
            space, protocol, target, remesh_quality=0.1, optimiser="lbfgs", diffusivity=DIFFUSIVITY
        )
    with pytest.raises(ValueError, match="remesh_quality"):
        reconstruct_shape(space, protocol, target, remesh_quality=1.5, diffusivity=DIFFUSIVITY)
