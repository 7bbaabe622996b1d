"""The ``mesh check`` subcommand."""

import argparse

import pytest

from mf_dmri import units
from mf_dmri.cli import mesh as mesh_cli
from mf_dmri.geometry import SurfaceMesh, sphere
from mf_dmri.io.mesh import save_surface


def _parser():
    parser = argparse.ArgumentParser(prog="mf-dmri")
    mesh_cli.register(parser.add_subparsers(dest="command"))
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


def test_check_good_and_broken_files(tmp_path, capsys):
    cell = sphere(5 * units.um, subdivisions=2)
    good, broken = tmp_path / "good.ply", tmp_path / "broken.ply"
    save_surface(cell, good, unit=units.um)
    save_surface(SurfaceMesh(cell.vertices, cell.faces[:-1]), broken, unit=units.um)
    assert _run(["mesh", "check", str(good), "--unit", "um"]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert _run(["mesh", "check", str(broken), "--unit", "um"]) == 1
    assert "PROBLEM open_edges" in capsys.readouterr().out
    assert _run(["mesh", "check", str(good), "--unit", "m"]) == 1
    assert "implausible_size" in capsys.readouterr().out
    assert _run(["mesh", "check", str(good), "--unit", "1e-6"]) == 0


def test_unit_is_required_and_parsed():
    with pytest.raises(SystemExit):
        _parser().parse_args(["mesh", "check", "x.ply"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["mesh", "check", "x.ply", "--unit", "furlong"])
    assert mesh_cli.parse_unit("nm") == units.nm


def test_mesh_repair_writes_a_valid_surface_and_check_names_cli_flags(tmp_path, capsys):
    from mf_dmri.cli.main import main
    from mf_dmri.geometry import check_surface, sphere
    from mf_dmri.io.mesh import load_surface, save_surface

    cell = sphere(5 * units.um, subdivisions=2)
    path, out = tmp_path / "cell.stl", tmp_path / "fixed.ply"
    save_surface(cell, path, unit=units.um)  # STL: every corner its own vertex
    assert main(["mesh", "check", str(path), "--unit", "um"]) == 1
    printed = capsys.readouterr().out
    assert f"mf-dmri mesh repair {path} {tmp_path / 'cell_repaired.stl'} --unit um" in printed
    assert "repair_surface" not in printed
    assert main(["mesh", "repair", str(path), str(out), "--unit", "um"]) == 0
    assert "merge_vertices" in capsys.readouterr().out
    assert check_surface(load_surface(out, unit=units.um)).ok


def test_mesh_repair_remeshes_when_asked_and_prints_the_remesh_report(tmp_path, capsys):
    from mf_dmri.cli.main import main
    from mf_dmri.geometry import check_surface, sphere
    from mf_dmri.geometry.remesh import min_triangle_angles
    from mf_dmri.io.mesh import load_surface, save_surface

    cell = sphere(5 * units.um, subdivisions=2)
    path, out = tmp_path / "cell.stl", tmp_path / "fixed.ply"
    save_surface(cell, path, unit=units.um)
    args = ["mesh", "repair", str(path), str(out), "--unit", "um", "--remesh-max-edge", "1.0"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "merge_vertices" in printed and "remesh: faces 320 ->" in printed
    remeshed = load_surface(out, unit=units.um)
    assert check_surface(remeshed).ok
    assert abs(remeshed.signed_volume() / cell.signed_volume() - 1) < 0.01
    assert min_triangle_angles(remeshed.vertices, remeshed.faces).min() > 20
