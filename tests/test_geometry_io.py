"""Loading and saving surface meshes: round trips per format, units, unparsable files."""

import numpy as np
import pytest

from mf_dmri import units
from mf_dmri.geometry import check_surface, repair_surface, sphere
from mf_dmri.io.mesh import MeshFileError, load_surface, save_surface

FORMATS = ["ply", "stl", "obj", "off", "glb", "vtk", "vtu"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip(tmp_path, suffix):
    mesh = sphere(5 * units.um, subdivisions=2)
    path = tmp_path / f"cell.{suffix}"
    save_surface(mesh, path, unit=units.um)
    loaded = load_surface(path, unit=units.um)
    if suffix == "stl":  # STL stores every triangle's corners separately
        assert loaded.n_vertices == 3 * mesh.n_faces
        assert "duplicate_vertices" in check_surface(loaded).problems
        loaded, report = repair_surface(loaded)
        assert report.count("merge_vertices") == 2 * mesh.n_faces + mesh.n_faces - mesh.n_vertices
    assert loaded.n_faces == mesh.n_faces
    # STL and GLB store float32: ~7 digits of the coordinates in micrometres (5 um -> 1e-12 m)
    np.testing.assert_allclose(loaded.triangles(), mesh.triangles(), rtol=0, atol=1e-12)
    assert check_surface(loaded).ok


def test_ply_keeps_float64(tmp_path):
    mesh = sphere(1.2345678912345 * units.um, subdivisions=1)
    save_surface(mesh, tmp_path / "a.ply", unit=units.um)
    np.testing.assert_array_equal(
        load_surface(tmp_path / "a.ply", unit=units.um).vertices, mesh.vertices
    )


@pytest.mark.parametrize("suffix", ["obj", "off"])
@pytest.mark.parametrize("unit", [units.m, units.um, units.nm])
def test_text_formats_keep_every_digit(tmp_path, suffix, unit):
    """OBJ and OFF are text: the coordinates must come back as written in any file unit
    (trimesh's default of 8 decimals rounded metres to 10 nm: +0.05 % volume on a neuron)."""
    mesh = sphere(1.2345678912345 * units.um, subdivisions=1)
    path = tmp_path / f"a.{suffix}"
    save_surface(mesh, path, unit=unit)
    loaded = load_surface(path, unit=unit)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, rtol=1e-15, atol=1e-22)


def test_obj_faces_with_normals_keep_the_vertices_as_written(tmp_path):
    """Blender writes ``f v//vn`` with one normal per face: the cube's 8 corners carry
    three normals each, which must not split them into 24 vertices (an open surface)."""
    corners = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    quads = [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)]
    normals = ["-1 0 0", "1 0 0", "0 -1 0", "0 1 0", "0 0 -1", "0 0 1"]
    lines = ["# Blender-style OBJ", "o cube"]
    lines += [f"v {x} {y} {z}" for x, y, z in corners]
    lines += [f"vn {n}" for n in normals]
    lines += [f"f {a}//{k} {b}//{k} {c}//{k} {d}//{k}" for k, (a, b, c, d) in enumerate(quads, 1)]
    path = tmp_path / "cube.obj"
    path.write_text("\n".join(lines) + "\n")
    loaded = load_surface(path, unit=units.um)
    assert loaded.n_vertices == 8 and loaded.n_faces == 12
    report = check_surface(loaded)
    assert report.ok, report.summary()
    assert loaded.signed_volume() == pytest.approx(1e-18, rel=1e-12)


def test_unit_scales_coordinates(tmp_path):
    mesh = sphere(5 * units.um, subdivisions=1)
    save_surface(mesh, tmp_path / "a.off", unit=units.nm)
    in_nm = load_surface(tmp_path / "a.off", unit=units.nm)
    np.testing.assert_allclose(in_nm.vertices, mesh.vertices, rtol=1e-12)
    wrong = load_surface(tmp_path / "a.off", unit=units.m)
    assert "implausible_size" in check_surface(wrong).problems


def test_unit_is_required_and_validated(tmp_path):
    save_surface(sphere(1e-6, subdivisions=1), tmp_path / "a.ply", unit=units.um)
    with pytest.raises(TypeError):
        load_surface(tmp_path / "a.ply")  # no default unit
    for bad in (0.0, -1e-6, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            load_surface(tmp_path / "a.ply", unit=bad)


def test_unparsable_files_raise_clear_errors(tmp_path):
    garbage = tmp_path / "bad.ply"
    garbage.write_text("this is not a mesh")
    with pytest.raises(MeshFileError, match="cannot parse"):
        load_surface(garbage, unit=units.um)
    truncated = tmp_path / "bad.stl"
    truncated.write_text("solid x\nfacet normal 0 0 1\n")
    with pytest.raises(MeshFileError):
        load_surface(truncated, unit=units.um)
    unknown = tmp_path / "x.xyz"
    unknown.write_text("1 2 3")
    with pytest.raises(MeshFileError, match="unsupported mesh format"):
        load_surface(unknown, unit=units.um)
    with pytest.raises(FileNotFoundError):
        load_surface(tmp_path / "missing.ply", unit=units.um)
