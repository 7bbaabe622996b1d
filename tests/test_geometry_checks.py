"""Each check has a specifically broken mesh and raises its own error; explicit repair fixes
the repairable ones."""

import numpy as np
import pytest

from mf_dmri import units
from mf_dmri.geometry import (
    DegenerateFacesError,
    DuplicateVerticesError,
    ImplausibleSizeError,
    InconsistentWindingError,
    InwardWindingError,
    MultipleBodiesError,
    NonManifoldError,
    OpenSurfaceError,
    SelfIntersectionError,
    SurfaceMesh,
    check_surface,
    concatenate,
    repair_surface,
    self_intersections,
    sphere,
    validate_surface,
)

um = units.um
CELL = sphere(5 * um, subdivisions=3)


def _with_faces(faces):
    return SurfaceMesh(CELL.vertices, faces)


def test_good_mesh_passes():
    report = validate_surface(CELL)
    assert report.ok and report.n_bodies == 1
    assert report.volume == pytest.approx(CELL.signed_volume())


def test_open_surface():
    broken = _with_faces(CELL.faces[:-2])
    with pytest.raises(OpenSurfaceError, match="not watertight: 4 open") as info:
        validate_surface(broken)
    assert "repair_surface(mesh) (fills the holes)" in str(info.value)
    report = check_surface(broken)
    assert report.open_edges.shape == (4, 2)
    assert "mf-dmri mesh repair IN OUT --unit UNIT" in report.summary(for_cli=True)
    repaired, repair = repair_surface(broken)
    assert repair.count("retriangulated") == 1 and validate_surface(repaired).ok
    assert abs(repair.volume_after - CELL.signed_volume()) < 1e-3 * CELL.signed_volume()


def test_inconsistent_winding():
    faces = CELL.faces.copy()
    faces[:7] = faces[:7, ::-1]
    broken = _with_faces(faces)
    with pytest.raises(InconsistentWindingError, match=r"repair_surface\(mesh\)"):
        validate_surface(broken)
    repaired, repair = repair_surface(broken)
    assert repair.count("reoriented") == 7
    assert validate_surface(repaired).volume == pytest.approx(CELL.signed_volume())


def test_inward_winding():
    broken = CELL.flipped()
    with pytest.raises(InwardWindingError, match="inwards"):
        validate_surface(broken)
    repaired, repair = repair_surface(broken)
    assert repair.count("inverted") == CELL.n_faces
    assert validate_surface(repaired).volume == pytest.approx(CELL.signed_volume())


def test_degenerate_faces():
    # a sliver: a new vertex on the midpoint of an edge, split into a zero-area triangle
    a, b, c = CELL.faces[0]
    midpoint = 0.5 * (CELL.vertices[a] + CELL.vertices[b])
    vertices = np.vstack([CELL.vertices, midpoint])
    m = len(CELL.vertices)
    faces = np.vstack([CELL.faces, [[a, m, b]]])
    broken = SurfaceMesh(vertices, faces)
    with pytest.raises(DegenerateFacesError, match="1 faces have zero area"):
        validate_surface(broken)
    repaired, repair = repair_surface(broken)
    assert repair.count("retriangulated") >= 1 and validate_surface(repaired).ok
    assert repair.volume_after == pytest.approx(CELL.signed_volume(), rel=1e-3)


def test_duplicate_vertices():
    corners = CELL.triangles().reshape(-1, 3)
    broken = SurfaceMesh(corners, np.arange(len(corners)).reshape(-1, 3))
    with pytest.raises(DuplicateVerticesError, match="typical of STL"):
        validate_surface(broken)
    repaired, repair = repair_surface(broken)
    assert repair.count("merge_vertices") == len(corners) - CELL.n_vertices
    assert validate_surface(repaired).ok


def test_nonmanifold_edges():
    doubled = _with_faces(np.vstack([CELL.faces, CELL.faces[:1, ::-1]]))
    with pytest.raises(NonManifoldError, match="more than two faces"):
        validate_surface(doubled)


def test_self_intersection_spike():
    vertices = CELL.vertices.copy()
    vertices[0] = -1.5 * vertices[0]  # pull a vertex through the opposite side
    broken = SurfaceMesh(vertices, CELL.faces)
    with pytest.raises(SelfIntersectionError, match="intersect"):
        validate_surface(broken)
    repaired, repair = repair_surface(broken)
    # the spike is cut out and the hole closed again, locally
    assert repair.count("retriangulated") >= 1 and validate_surface(repaired).ok
    assert repaired.n_faces > 0.9 * CELL.n_faces


def test_self_intersection_of_overlapping_bodies():
    second = CELL.translated([4 * units.um, 0.3 * units.um, 0.1 * units.um])
    pairs = self_intersections(concatenate([CELL, second]))
    assert len(pairs) > 0
    # every pair mixes the two bodies
    assert np.all((pairs[:, 0] < CELL.n_faces) != (pairs[:, 1] < CELL.n_faces))
    apart = CELL.translated([11 * units.um, 0, 0])
    assert len(self_intersections(concatenate([CELL, apart]))) == 0


def test_multiple_bodies_allowed_when_asked():
    two = concatenate([CELL, CELL.translated([20 * units.um, 0, 0])])
    with pytest.raises(MultipleBodiesError, match="allow_multiple_bodies=True"):
        validate_surface(two)
    report = validate_surface(two, allow_multiple_bodies=True)
    assert report.n_bodies == 2
    np.testing.assert_allclose(report.body_volumes, 2 * [CELL.signed_volume()])


def test_implausible_size_suggests_unit():
    in_metres_by_mistake = SurfaceMesh(CELL.vertices / units.um, CELL.faces)
    with pytest.raises(ImplausibleSizeError, match="1e-06"):
        validate_surface(in_metres_by_mistake)
    validate_surface(in_metres_by_mistake, plausible_extent=(1, 100))


def test_report_lists_all_problems_in_order():
    corners = CELL.triangles().reshape(-1, 3)[:-3]
    report = check_surface(SurfaceMesh(corners, np.arange(len(corners)).reshape(-1, 3)))
    assert report.problems[:2] == ("duplicate_vertices", "open_edges")
    assert not report.ok and "PROBLEM duplicate_vertices" in report.summary()


def test_fold_between_edge_neighbours_is_an_intersection():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.4, 0.6, 0], [0.5, -1, 0]]) * um
    folded = SurfaceMesh(vertices, [[0, 1, 2], [1, 0, 3]])  # 3 lies on 2's side of edge 0-1
    flat = SurfaceMesh(vertices, [[0, 1, 2], [1, 0, 4]])  # 4 lies on the other side
    assert self_intersections(folded).tolist() == [[0, 1]]
    assert len(self_intersections(flat)) == 0


def test_coplanar_overlap_of_separate_triangles():
    vertices = (
        np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0.5, 0.5, 0], [3, 0.5, 0], [0.5, 3, 0]]) * um
    )
    assert self_intersections(SurfaceMesh(vertices, [[0, 1, 2], [3, 4, 5]])).tolist() == [[0, 1]]
    apart = vertices.copy()
    apart[3:] += [5 * um, 5 * um, 0]
    assert len(self_intersections(SurfaceMesh(apart, [[0, 1, 2], [3, 4, 5]]))) == 0
