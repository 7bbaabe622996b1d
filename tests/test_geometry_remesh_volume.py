"""The remeshed volume restored where it was lost (mf_dmri.geometry.remesh_volume): each
body of a coarse polyhedral copy gets its own volume back, where one uniform offset moves
volume from the thin parts to the thick ones."""

from __future__ import annotations

import numpy as np
import pytest
from navis_cases import cut_navis_piece, navis_surface

import mf_dmri.geometry.remesh_volume as remesh_volume
from mf_dmri.geometry import capsule, concatenate, remesh_surface, repair_surface, sphere
from mf_dmri.geometry.remesh import _Projector
from mf_dmri.geometry.remesh_volume import face_gaps, restore_volume, volume_between
from mf_dmri.geometry.repair_steps import body_volumes
from mf_dmri.units import um


def _thin_and_thick(segments: int, subdivisions: int):
    """A neurite-like capsule (radius 0.3 um) and a soma-like sphere (radius 3 um), in um."""
    tube = capsule(0.3 * um, 12 * um, segments=segments)
    soma = sphere(3 * um, subdivisions=subdivisions).translated([0, 8 * um, 0])
    surface = concatenate([tube, soma])
    return surface.vertices / um, surface.faces


def test_the_gaps_of_an_inscribed_polyhedron_add_up_to_its_missing_volume():
    """Every face of an inscribed polyhedron lies inside the input: the volume between them
    is about the difference of the enclosed volumes (exact signed volumes).  About, not
    exactly: the prisms over the faces miss the wedges above the convex edges, and the
    closest point measures the normal height times cos^2 of the angle to the radius (3.7 %
    less here, on faces 1.9 um wide on a 3 um sphere)."""
    fine_vertices, fine_faces = _thin_and_thick(96, 5)
    coarse_vertices, coarse_faces = _thin_and_thick(6, 1)
    gaps = _Projector(fine_vertices, fine_faces).gaps
    _, fine_volumes = body_volumes(fine_vertices, fine_faces)
    _, coarse_volumes = body_volumes(coarse_vertices, coarse_faces)
    face_gap, areas = face_gaps(coarse_vertices, coarse_faces, gaps)
    assert (face_gap > 0).all()
    missing = fine_volumes.sum() - coarse_volumes.sum()
    assert volume_between(coarse_vertices, coarse_faces, gaps) == pytest.approx(missing, rel=0.05)
    assert areas.sum() == pytest.approx(
        sum(
            0.5 * np.linalg.norm(np.cross(t[1] - t[0], t[2] - t[0]))
            for t in coarse_vertices[coarse_faces]
        )
    )


def test_each_body_gets_its_own_volume_back(monkeypatch):
    """A hexagonal neurite loses 14 % of its volume, a level-1 icosphere soma 13 %.  Restored
    where it was lost, each is within 0.5 % of its input; one uniform offset alone (the
    previous restoration) gives the neurite +68 % and the soma -2 %."""
    fine_vertices, fine_faces = _thin_and_thick(96, 5)
    coarse_vertices, coarse_faces = _thin_and_thick(6, 1)
    gaps = _Projector(fine_vertices, fine_faces).gaps
    _, wanted = body_volumes(fine_vertices, fine_faces)
    _, before = body_volumes(coarse_vertices, coarse_faces)
    assert (before / wanted - 1 < -0.12).all()

    restored, local, _, offset = restore_volume(coarse_vertices, coarse_faces, wanted.sum(), gaps)
    _, after = body_volumes(restored, coarse_faces)
    np.testing.assert_allclose(after, wanted, rtol=5e-3)
    assert after.sum() == pytest.approx(wanted.sum(), rel=1e-8)
    assert abs(offset) < 0.01 * local
    assert volume_between(restored, coarse_faces, gaps) < 0.1 * volume_between(
        coarse_vertices, coarse_faces, gaps
    )

    monkeypatch.setattr(remesh_volume, "LOCAL_ROUNDS", 0)
    uniform, local, _, _ = restore_volume(coarse_vertices, coarse_faces, wanted.sum(), gaps)
    _, shifted = body_volumes(uniform, coarse_faces)
    assert local == 0.0
    assert shifted[0] / wanted[0] - 1 > 0.5
    assert shifted[1] / wanted[1] - 1 < -0.015


def _misplaced(mesh, gaps, cell: float) -> float:
    """sum over the cubes of side ``cell`` [um] of |the signed volume between the surface and
    the input in the cube| [um^3]: volume moved from one region to another."""
    vertices = mesh.vertices / um
    gap, areas = face_gaps(vertices, mesh.faces, gaps)
    cube = np.floor(vertices[mesh.faces].mean(axis=1) / cell).astype(np.int64)
    _, label = np.unique(cube, axis=0, return_inverse=True)
    return float(np.abs(np.bincount(label.ravel(), areas * gap)).sum())


def test_a_remeshed_real_surface_keeps_its_volume_where_it_was(monkeypatch):
    """The cut navis piece remeshed at one edge across its thin parts: the volume moved
    between 2 um and 4 um cubes is 1.1 % and 0.7 % of the input restored locally, 2.5 % and
    1.6 % with the uniform offset alone (measured); the volume between the surfaces 2.6 %
    against 4.2 %."""
    repaired, _ = repair_surface(cut_navis_piece())
    gaps = _Projector(repaired.vertices / um, repaired.faces).gaps
    volume = repaired.signed_volume() / um**3
    settings = dict(max_edge=1.5 * um, min_edge=0.5 * um, cells_across=1.0)
    local, report = remesh_surface(repaired, **settings)
    assert abs(report.volume_change) < 1e-3
    assert report.local_move > 10 * abs(report.offset)
    assert report.displaced_after < report.displaced_remeshed
    assert "restored where it was lost" in report.summary()

    monkeypatch.setattr(remesh_volume, "LOCAL_ROUNDS", 0)
    uniform, uniform_report = remesh_surface(repaired, **settings)
    for cell in (2.0, 4.0):
        assert _misplaced(local, gaps, cell) < 0.5 * _misplaced(uniform, gaps, cell)
    assert _misplaced(local, gaps, 2.0) < 0.015 * volume
    assert report.displaced_after < 0.7 * uniform_report.displaced_after


def test_crossing_walls_keep_the_uniform_move_and_a_real_cell_still_tetrahedralises():
    """navis 754538881 remeshed with the gallery's settings: its thin parts leave crossing
    walls that the local moves alone did not push apart (86 crossing pairs, 22 regions to
    re-triangulate, 17 sliver triangles, then zero-volume tetrahedra that the eigenbasis
    refused); with the uniform move there, 4 regions and 4 slivers (measured), and every
    tetrahedron has a volume."""
    from mf_dmri.fem.mesh_input import mesh_arrays
    from mf_dmri.geometry import check_surface, tetrahedralize

    repaired, _ = repair_surface(navis_surface(754538881), merge_tolerance=1e-3)
    remeshed, report = remesh_surface(
        repaired, max_edge=1 * um, min_edge=0.25 * um, cells_across=1.5
    )
    assert report.uniform_vertices > 0
    assert report.retriangulated <= 8
    assert report.slivers_after <= 8
    bodies = check_surface(remeshed, allow_multiple_bodies=True).n_bodies
    mesh = tetrahedralize(remeshed, allow_multiple_bodies=bodies > 1)
    mesh_arrays(mesh.nodes, mesh.elements)  # raises on zero-volume elements
