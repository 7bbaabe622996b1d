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
