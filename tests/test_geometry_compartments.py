"""Nesting of closed surfaces into compartments."""

import numpy as np
import pytest

from mf_dmri import units
from mf_dmri.geometry import (
    OpenSurfaceError,
    SurfaceIntersectionError,
    SurfaceMesh,
    box,
    build_compartments,
    concatenate,
    cylinder,
    sphere,
    winding_numbers,
)

um = units.um


def test_winding_numbers_inside_outside():
    cell = sphere(2 * um, subdivisions=3)
    points = np.array([[0, 0, 0], [1.5 * um, 0, 0], [2.5 * um, 0, 0], [0, 0, -9 * um]])
    np.testing.assert_allclose(winding_numbers(cell, points), [1, 1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(winding_numbers(cell.flipped(), points[:1]), [-1], atol=1e-9)


@pytest.mark.parametrize("chunk", [1, 500, 10**7])
def test_winding_numbers_do_not_depend_on_the_pass_size(chunk):
    """Passes of one point (fewer pairs than faces), of a few points and of every point."""
    cell = sphere(2 * um, subdivisions=3)
    points = np.random.default_rng(1).uniform(-3 * um, 3 * um, (37, 3))
    expected = (np.linalg.norm(points, axis=1) < 1.9 * um).astype(float)
    outside_band = np.abs(np.linalg.norm(points, axis=1) - 2 * um) > 0.1 * um
    values = winding_numbers(cell, points, chunk=chunk)
    np.testing.assert_allclose(values[outside_band], expected[outside_band], atol=1e-9)
    np.testing.assert_allclose(values, winding_numbers(cell, points), atol=1e-12)


def test_axon_in_box_gives_intra_and_extra():
    block = box((10 * um, 10 * um, 10 * um), edge_length=1 * um)
    axon = cylinder(2 * um, 8 * um, segments=24).translated([5 * um, 5 * um, 5 * um])
    model = build_compartments([axon, block], names=["intra", "extra"])
    assert model.parents == (1, -1)
    assert model.children(1) == (0,)
    assert model.volumes[0] == pytest.approx(axon.signed_volume(), rel=1e-12)
    assert model.volumes[1] == pytest.approx(1000 * um**3 - axon.signed_volume(), rel=1e-12)
    assert model.total_volume() == pytest.approx(1000 * um**3, rel=1e-12)
    # interior points lie in their own compartment only
    inside_axon = winding_numbers(axon, model.interior_points)
    np.testing.assert_allclose(inside_axon, [1, 0], atol=1e-9)


def test_cell_with_nucleus_and_two_disjoint_cells():
    cell = sphere(5 * um, subdivisions=3)
    nucleus = sphere(2 * um, subdivisions=2).translated([1 * um, 0, 0])
    other = sphere(3 * um, subdivisions=2).translated([20 * um, 0, 0])
    model = build_compartments(concatenate([cell, nucleus, other]))  # one file, 3 bodies
    order = np.argsort([s.signed_volume() for s in model.surfaces])
    small, middle, large = order
    assert model.parents[small] == large and model.parents[middle] == -1
    assert model.parents[large] == -1
    assert model.volumes[large] == pytest.approx(cell.signed_volume() - nucleus.signed_volume())
    assert model.depth(small) == 1 and model.depth(large) == model.depth(middle) == 0
    assert model.outermost_first() == (large, middle, small)  # depth, then volume


def test_crossing_surfaces_are_refused():
    first = sphere(3 * um, subdivisions=2)
    second = sphere(3 * um, subdivisions=2).translated([2 * um, 0.1 * um, 0])
    with pytest.raises(SurfaceIntersectionError, match="cross"):
        build_compartments([first, second])


def test_invalid_surface_is_refused():
    cell = sphere(3 * um, subdivisions=2)
    with pytest.raises(OpenSurfaceError):
        build_compartments([SurfaceMesh(cell.vertices, cell.faces[:-1])])
