"""Tetrahedralisation: volume fidelity, labels of nested compartments, conforming
interfaces, disconnected pieces, refusal of bad input, local sizing."""

import importlib.util

import numpy as np
import pytest

from mf_dmri import units
from mf_dmri.geometry import (
    MesherError,
    OpenSurfaceError,
    SurfaceMesh,
    VolumeFidelityError,
    VolumeMesh,
    box,
    build_compartments,
    concatenate,
    cylinder,
    sphere,
    tetrahedralize,
)
from mf_dmri.geometry.quality import boundary_faces, interface_faces, triangle_area

um = units.um
HAS = {
    name: importlib.util.find_spec(module) is not None
    for name, module in (("netgen", "netgen"), ("tetgen", "tetgen"), ("tetwild", "pytetwild"))
}


def _needs(method):
    return pytest.mark.skipif(not HAS[method], reason=f"{method} is not installed")


@pytest.fixture(scope="module")
def axon_in_box():
    block = box((8 * um, 8 * um, 8 * um), edge_length=2 * um)
    axon = cylinder(2 * um, 6 * um, segments=12).translated([4 * um, 4 * um, 4 * um])
    return build_compartments([axon, block], names=["intra", "extra"]), axon


@_needs("netgen")
def test_sphere_volume_and_quality():
    cell = sphere(4 * um, subdivisions=2)
    mesh = tetrahedralize(cell, thin_part_cells=None)
    assert isinstance(mesh, VolumeMesh)
    assert np.all(mesh.element_volumes() > 0) and np.all(mesh.labels == 0)
    quality = mesh.quality
    assert quality.volume_error < 1e-12  # netgen keeps the surface exactly
    assert quality.area_error < 1e-12
    assert mesh.volume() == pytest.approx(cell.signed_volume(), rel=1e-12)
    assert quality.min_dihedral > 5 and quality.mean_radius_ratio > 0.6


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("netgen", marks=_needs("netgen")),
        pytest.param("tetgen", marks=_needs("tetgen")),
    ],
)
def test_nested_compartments_labels_volumes_and_conforming_interface(axon_in_box, method):
    model, axon = axon_in_box
    mesh = tetrahedralize(model, method=method, thin_part_cells=None)
    assert set(np.unique(mesh.labels)) == {0, 1}
    per_label = np.bincount(mesh.labels, weights=mesh.element_volumes())
    np.testing.assert_allclose(per_label, model.volumes, rtol=1e-10)
    # the interface between labels is exactly the axon surface: same area, and every
    # interface node lies on it (conforming: no tetrahedron straddles the interface)
    interface = interface_faces(mesh.elements, mesh.labels)
    assert triangle_area(mesh.nodes, interface) == pytest.approx(axon.area(), rel=1e-10)
    centroids = mesh.nodes[mesh.elements].mean(axis=1)
    radial = np.linalg.norm(centroids[:, :2] - 4 * um, axis=1)
    assert np.all(radial[mesh.labels == 0] < 2 * um)
    outer = triangle_area(mesh.nodes, boundary_faces(mesh.elements))
    assert outer == pytest.approx(6 * 64 * um**2, rel=1e-12)


@_needs("netgen")
def test_disconnected_pieces_keep_own_labels():
    first = sphere(2 * um, subdivisions=1)
    second = sphere(1.5 * um, subdivisions=1).translated([6 * um, 0, 0])
    mesh = tetrahedralize(
        concatenate([first, second]), thin_part_cells=None, allow_multiple_bodies=True
    )
    per_label = np.bincount(mesh.labels, weights=mesh.element_volumes())
    np.testing.assert_allclose(
        sorted(per_label), sorted([second.signed_volume(), first.signed_volume()]), rtol=1e-10
    )


@_needs("netgen")
def test_length_scale_refines():
    cell = sphere(4 * um, subdivisions=1)
    coarse = tetrahedralize(cell, thin_part_cells=None)
    fine = tetrahedralize(cell, length_scale=2 * um, thin_part_cells=None)
    assert fine.n_elements > 3 * coarse.n_elements
    assert fine.volume() == pytest.approx(cell.signed_volume(), rel=1e-12)
    with pytest.raises(ValueError, match="length_scale"):
        tetrahedralize(cell, length_scale=-1.0)


@_needs("netgen")
def test_thin_part_sizing_adds_elements_across_a_thin_plate():
    plate = box((4 * um, 4 * um, 0.6 * um), edge_length=1.2 * um)
    plain = tetrahedralize(plate, thin_part_cells=None)
    sized = tetrahedralize(plate, thin_part_cells=3.0)
    assert sized.n_elements > plain.n_elements

    def mean_edge(mesh):
        corners = mesh.nodes[mesh.elements]
        return np.linalg.norm(
            corners[:, [0, 0, 0, 1, 1, 2]] - corners[:, [1, 2, 3, 2, 3, 3]], axis=2
        ).mean()

    assert mean_edge(sized) < mean_edge(plain)
    assert sized.quality.volume_error < 1e-12


def test_thickness_sizes_equal_the_unbounded_cast_where_they_bind():
    """local_sizes casts its thickness rays only longest-edge / factor far: every vertex
    whose size (factor x thickness) is below the longest surface edge gets the size of the
    unbounded cast, and the others, whose size could not bind, none.  A thin tube (1.6 um
    across, sized) joined to a ball of 12 um (too thick to be sized) has both kinds."""
    from mf_dmri.geometry import local_thickness
    from mf_dmri.geometry.compartments import CompartmentModel
    from mf_dmri.geometry.generators import undulating_axon
    from mf_dmri.geometry.sizing import local_sizes

    tube = undulating_axon(0.8 * um, 12 * um, 0.8 * um, 6 * um, segments=16)
    ball = sphere(6 * um, subdivisions=3)
    ball = SurfaceMesh(ball.vertices + [0.0, 0.0, 40 * um], ball.faces)
    both = concatenate([tube, ball])
    model = CompartmentModel((both,), (-1,), (both.signed_volume(),), np.zeros((1, 3)), ("cell",))
    factor = 1 / 3
    points, sizes = local_sizes(model, factor)
    full = local_thickness(both)
    tri = both.triangles()
    longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max()
    binding = full * factor < longest
    assert 0 < binding.sum() < both.n_vertices  # the tube is sized, the ball is not
    assert not binding[tube.n_vertices :].any()
    assert len(sizes) == 2 * binding.sum()
    np.testing.assert_allclose(points[: binding.sum()], both.vertices[binding])
    np.testing.assert_allclose(sizes[: binding.sum()], factor * full[binding], rtol=1e-9)


def test_bad_input_is_refused():
    cell = sphere(3 * um, subdivisions=2)
    with pytest.raises(OpenSurfaceError):
        tetrahedralize(SurfaceMesh(cell.vertices, cell.faces[:-1]))
    with pytest.raises(ValueError, match="method"):
        tetrahedralize(cell, method="magic")


def test_a_cell_far_smaller_than_its_target_edge_names_the_unit():
    """A surface in micrometres loaded as nanometres: a 200 nm "cell" meshed at the
    length scale of a real one (netgen then failed after minutes, blaming the length
    scale); refused at once, naming the unit.  A target edge of a few extents is kept."""
    tiny = sphere(100 * units.nm, subdivisions=2)
    with pytest.raises(ValueError, match="unit the surface was loaded with"):
        tetrahedralize(tiny, length_scale=3 * um)
    small = sphere(0.5 * um, subdivisions=2)
    assert tetrahedralize(small, length_scale=3 * um).quality.n_elements > 0


@pytest.mark.slow
@_needs("tetwild")
def test_tetwild_fidelity_and_refusal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # fTetWild writes a file into the working directory
    cell = sphere(3 * um, subdivisions=2)
    mesh = tetrahedralize(cell, method="tetwild", thin_part_cells=None)
    assert list(tmp_path.iterdir()) == []  # and tetrahedralize removes it
    assert mesh.quality.volume_error < 2e-3  # the envelope moves the boundary slightly
    assert mesh.quality.min_dihedral > 5
    with pytest.raises(VolumeFidelityError, match="differs from the surface volume"):
        tetrahedralize(cell, method="tetwild", thin_part_cells=None, volume_tolerance=1e-12)


@_needs("tetwild")
def test_tetwild_refuses_nested_compartments(axon_in_box):
    with pytest.raises(MesherError, match="disjoint bodies only"):
        tetrahedralize(axon_in_box[0], method="tetwild", thin_part_cells=None)


def test_volume_mesh_validates():
    nodes = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float) * um
    VolumeMesh(nodes, [[0, 1, 2, 3]], [0])
    with pytest.raises(ValueError, match="positively oriented"):
        VolumeMesh(nodes, [[0, 2, 1, 3]], [0])
    with pytest.raises(ValueError, match="labels"):
        VolumeMesh(nodes, [[0, 1, 2, 3]], [0, 1])
