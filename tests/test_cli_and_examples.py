"""The command line (demo, simulate), config errors, result files and examples."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mf_dmri.cli.main import main
from mf_dmri.io.config import load_config
from mf_dmri.io.results import read_table

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_demo_writes_csv_and_png(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path), "--directions", "3"]) == 0
    columns, meta = read_table(tmp_path / "demo_signals.csv")
    assert (tmp_path / "demo_signals.png").stat().st_size > 1000
    assert meta["mf_dmri_version"] and "torch_version" in meta and "created" in meta
    assert meta["diffusivity_um2_per_ms"] == 2.0 and meta["pulse_duration_ms"] == 10.0
    assert columns["b_s_per_mm2"].shape == (1 + 7 * 3,)
    assert np.all(columns["sphere_R5um"] <= 1 + 1e-12)
    assert np.all(columns["sphere_R5um_error_bar"] >= 0)
    assert np.all(columns["sphere_R5um_error_bar"] < 1e-3)
    with open(tmp_path / "demo_signals.csv") as handle:
        assert handle.readline().startswith("b_s_per_mm2,direction_x")  # a real header
    assert "Direction-averaged signal" in capsys.readouterr().out


def test_simulate_example_config(tmp_path):
    """The example: axon (cylinder R = 4 um, signal fraction 0.6) + free extra-axonal water
    (D = 1 um^2/ms), both T2 = 80 ms.  The extra-axonal part is checked against the closed
    form exp(-b D) and the b = 0 signal against exp(-TE/T2) (TE = Delta + delta = 40 ms)."""
    out = tmp_path / "signals.npz"
    assert main(["simulate", str(EXAMPLES / "simulate.toml"), "-o", str(out)]) == 0
    columns, meta = read_table(out)
    assert meta["config"]["compartment"][0]["shape"] == "cylinder"
    b = columns["b_s_per_mm2"]
    np.testing.assert_allclose(np.unique(np.round(b)), [0, 1000, 2000, 4000])
    t2_factor = math.exp(-40.0 / 80.0)
    assert columns["signal"][b == 0][0] == pytest.approx(t2_factor, rel=1e-12)
    free = 0.4 * t2_factor * np.exp(-b * 1e-3 * 1.0)  # b [s/mm^2] x D [mm^2/s]
    np.testing.assert_allclose(columns["signal_extra"], free, rtol=1e-12)
    np.testing.assert_allclose(
        columns["signal_axon"] + columns["signal_extra"], columns["signal_real"], atol=1e-15
    )
    # the total bar (truncation + propagation) is within the default tolerance 1e-4
    assert np.all(columns["signal_error_bar"] <= 1e-4)
    assert np.all(columns["signal_error_bar"] > 0)


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "[[compartment]]\nshape='cube'\ndiffusivity_um2_per_ms=2\n[acquisition]\n"
            "pulse_duration_ms=1\npulse_separation_ms=2\nb_s_per_mm2=[0]",
            "shape must be one of",
        ),
        (
            "[[compartment]]\nshape='sphere'\nradius=5\ndiffusivity_um2_per_ms=2\n"
            "[acquisition]\npulse_duration_ms=1\npulse_separation_ms=2\nb_s_per_mm2=[0]",
            "radius is a length and needs a unit: write radius_um",
        ),
        (
            "[[compartment]]\nshape='sphere'\nradius_um=5\ndiffusivity_um2_per_ms=2\n",
            "needs a \\[acquisition\\]",
        ),
        ("[shape\nkind='sphere'", "not valid TOML"),
        (
            "[[compartment]]\nshape='sphere'\nradius_um=5\ndiffusivity_um2_per_ms=2\n"
            "[acquisition]\npulse_duration_ms=10\nb_s_per_mm2=[0]",
            "pulse_duration_ms needs pulse_separation_ms",
        ),
        (
            "[[compartment]]\nshape='cylinder'\nradius_um=5\ndiffusivity_um2_per_ms=2\n"
            "[[compartment]]\nshape='sphere'\nname='cell'\nradius_um=5\n"
            "diffusivity_um2_per_ms=2\nsignal_fraction=0.5\nvolume_fraction=0.5\n"
            "[acquisition]\npulse_duration_ms=10\npulse_separation_ms=20\nb_s_per_mm2=[0]",
            "give volume_fraction or signal_fraction, not both",
        ),
    ],
)
def test_config_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_cli_reports_errors_with_the_users_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(
        "[[compartment]]\nname='cell'\nshape='sphere'\nradius_um=-5\n"
        "diffusivity_um2_per_ms=2\n[acquisition]\npulse_duration_ms=10\n"
        "pulse_separation_ms=20\nb_s_per_mm2=[0, 1000]\n[output]\npath='x.csv'\n"
    )
    assert main(["simulate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "[[compartment]] 'cell' radius_um" in err and "radius must be positive" in err


def test_simulate_names_the_repair_command_for_a_broken_surface(tmp_path, capsys):
    """A mesh compartment whose surface has a hole: the error names the path key and the
    command that fixes it (with the file's own names), not a Python call."""
    from mf_dmri import units
    from mf_dmri.geometry import SurfaceMesh, generators
    from mf_dmri.io.mesh import save_surface

    sphere = generators.sphere(5 * units.um, subdivisions=2)
    save_surface(
        SurfaceMesh(sphere.vertices, sphere.faces[:-1]), tmp_path / "cell.ply", unit=units.um
    )
    config = tmp_path / "mesh.toml"
    config.write_text(
        '[[compartment]]\nname = "cell"\nshape = "mesh"\npath = "cell.ply"\nunit = "um"\n'
        "length_scale_um = 2.0\ndiffusivity_um2_per_ms = 2.0\n[acquisition]\n"
        "pulse_duration_ms = 10.0\npulse_separation_ms = 30.0\nb_s_per_mm2 = [0, 1000]\n"
    )
    assert main(["simulate", str(config), "-o", str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert "'cell' path" in err and "PROBLEM open_edges" in err
    cell, repaired = tmp_path / "cell.ply", tmp_path / "cell_repaired.ply"
    assert f"mf-dmri mesh repair {cell} {repaired} --unit um" in err  # the config's unit
    assert f"set path = '{repaired}'" in err and "repair_surface(" not in err
    assert "cannot be meshed: PROBLEM" in err and ":;" not in err  # one line, no ':;'


def test_mesh_unit_as_metres_per_file_unit(tmp_path, capsys):
    """navis' files are in 8 nm voxels: ``unit = 8e-9`` (metres per file unit, as the mesh
    commands' --unit) reads them: the signal of the same surface written in um, within the
    error bars; a non-positive number is refused, naming the key and both forms."""
    from mf_dmri import units
    from mf_dmri.geometry import generators
    from mf_dmri.io.mesh import save_surface

    surface = generators.sphere(5 * units.um, subdivisions=2)
    save_surface(surface, tmp_path / "um.ply", unit=units.um)
    save_surface(surface, tmp_path / "voxels.ply", unit=8e-9)
    signals = {}
    for name, unit in (("um", '"um"'), ("voxels", "8e-9"), ("bad", "-8e-9")):
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'[[compartment]]\nshape = "mesh"\npath = "{"um" if name == "bad" else name}.ply"\n'
            f"unit = {unit}\nelement_order = 1\nlength_scale_um = 3.0\n"
            "diffusivity_um2_per_ms = 2.0\n[acquisition]\npulse_duration_ms = 10.0\n"
            "pulse_separation_ms = 30.0\nb_s_per_mm2 = [0, 1000]\ndirections = 3\n"
        )
        out = tmp_path / f"{name}.csv"
        code = main(["simulate", str(config), "-o", str(out)])
        if name == "bad":
            assert code == 1
            err = capsys.readouterr().err
            assert "unit must be one of" in err and "metres per file unit" in err
            assert "-8e-09" in err
        else:
            assert code == 0
            columns = read_table(out)[0]
            signals[name] = (columns["signal"], columns["signal_error_bar"])
    # the same surface up to the files' float rounding; netgen's tetrahedra of the
    # icosphere (cospherical points) may differ, by less than the discretisation bars
    (voxels, voxels_bar), (um, um_bar) = signals["voxels"], signals["um"]
    assert (np.abs(voxels - um) <= voxels_bar + um_bar).all()
    assert np.abs(voxels - um).max() < 2e-3


def test_mixed_kinds_without_fractions_name_the_compartments(tmp_path, capsys):
    from mf_dmri.cli.simulation import simulate_config

    path = tmp_path / "mixed.toml"
    path.write_text(
        "[[compartment]]\nname='axon'\nshape='cylinder'\nradius_um=2\n"
        "diffusivity_um2_per_ms=2\n[[compartment]]\nname='cell'\nshape='sphere'\n"
        "radius_um=5\ndiffusivity_um2_per_ms=2\n[acquisition]\npulse_duration_ms=10\n"
        "pulse_separation_ms=20\nb_s_per_mm2=[0, 1000]\n"
    )
    with pytest.raises(ValueError, match="volume_fraction/signal_fraction.*cross-section"):
        simulate_config(load_config(path))
    assert main(["simulate", str(path), "-o", str(tmp_path / "x.csv")]) == 1
    assert "cross-section" in capsys.readouterr().err


def test_deprecated_keys_warn_and_give_the_same_signal(tmp_path):
    from mf_dmri.cli.simulation import simulate_config
    from mf_dmri.io.vocabulary import MfDmriDeprecationWarning

    old = tmp_path / "old.toml"
    old.write_text(
        "[shape]\nkind='sphere'\nradius_um=5\n[tissue]\ndiffusivity_um2_per_ms=2\n"
        "[acquisition]\ndelta_ms=10\nDelta_ms=30\nb_s_per_mm2=[0, 3000]\ndirections=3\n"
    )
    new = tmp_path / "new.toml"
    new.write_text(
        "[[compartment]]\nshape='sphere'\nradius_um=5\ndiffusivity_um2_per_ms=2\n"
        "[acquisition]\npulse_duration_ms=10\npulse_separation_ms=30\n"
        "b_s_per_mm2=[0, 3000]\ndirections=3\n"
    )
    with pytest.warns(MfDmriDeprecationWarning, match="'delta_ms' is deprecated"):
        legacy = load_config(old)
    np.testing.assert_array_equal(
        simulate_config(legacy).signals, simulate_config(load_config(new)).signals
    )


def test_examples_run(tmp_path):
    import importlib.util

    for name in ("simulate_and_plot", "gradient_wrt_radius"):
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if name == "simulate_and_plot":
            results = module.main(str(tmp_path / "plot.png"), num_b=5)
            assert all(torch.all(v <= 1 + 1e-12) for v in results.values())
        else:
            exact, finite = module.main()
            torch.testing.assert_close(exact, finite, rtol=1e-6, atol=0)


def test_simulate_mesh_config_matches_analytic_sphere(tmp_path):
    """End to end: surface file in um -> tetrahedra -> FEM eigenbasis -> signal, compared
    with the analytic sphere (agreement to the FEM/polyhedral accuracy, 3e-3)."""
    from mf_dmri import units
    from mf_dmri.analytic import sphere
    from mf_dmri.geometry import generators
    from mf_dmri.io.mesh import save_surface
    from mf_dmri.sequences import PGSE, multi_shell
    from mf_dmri.signal import Compartment, signal

    surface = generators.sphere(5 * units.um, subdivisions=4)
    save_surface(surface, tmp_path / "cell.ply", unit=units.um)
    config = tmp_path / "mesh.toml"
    config.write_text(
        '[[compartment]]\nshape = "mesh"\npath = "cell.ply"\nunit = "um"\n'
        # P1 (the element_order key): this fast-suite check takes twice as long with P2
        "element_order = 1\nlength_scale_um = 2.0\ndiffusivity_um2_per_ms = 2.0\n[acquisition]\n"
        "pulse_duration_ms = 10.0\npulse_separation_ms = 30.0\nb_s_per_mm2 = [0, 1000, 3000]\n"
        "directions = 3\n"
    )
    assert main(["simulate", str(config), "-o", str(tmp_path / "out.csv")]) == 0
    columns, _ = read_table(tmp_path / "out.csv")
    acq = multi_shell(PGSE(10 * units.ms, 30 * units.ms), [0, 1e9, 3e9], 3)
    exact = signal(Compartment(sphere(5 * units.um), 2e-9), acq).real.numpy()
    np.testing.assert_allclose(columns["signal"], exact, atol=3e-3)
