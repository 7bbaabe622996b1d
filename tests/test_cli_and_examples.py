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
    assert meta["mf_dmri_version"] and "torch_version" in meta
    assert columns["b_s_per_mm2"].shape == (1 + 7 * 3,)
    assert np.all(columns["sphere_R5um"] <= 1 + 1e-12)
    assert "Direction-averaged signal" in capsys.readouterr().out


def test_simulate_example_config(tmp_path):
    out = tmp_path / "signals.npz"
    assert main(["simulate", str(EXAMPLES / "simulate.toml"), "-o", str(out)]) == 0
    columns, meta = read_table(out)
    assert meta["config"]["shape"]["kind"] == "cylinder"
    b = columns["b_s_per_mm2"]
    np.testing.assert_allclose(np.unique(np.round(b)), [0, 1000, 2000, 4000])
    t2_factor = math.exp(-40.0 / 80.0)  # TE = Delta + delta = 40 ms
    assert columns["signal_abs"][b == 0][0] == pytest.approx(t2_factor, rel=1e-12)


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "[shape]\nkind='cube'\n[tissue]\ndiffusivity_um2_per_ms=2\n[acquisition]\n"
            "delta_ms=1\nDelta_ms=2\nb_s_per_mm2=[0]",
            "kind must be",
        ),
        (
            "[shape]\nkind='sphere'\nradius=5\n[tissue]\ndiffusivity_um2_per_ms=2\n[acquisition]\n"
            "delta_ms=1\nDelta_ms=2\nb_s_per_mm2=[0]",
            "unknown key",
        ),
        ("[shape]\nkind='sphere'\nradius_um=5\n[tissue]\ndiffusivity_um2_per_ms=2\n", "needs a"),
        ("[shape\nkind='sphere'", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_cli_reports_errors(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(
        "[shape]\nkind='sphere'\nradius_um=-5\n[tissue]\n"
        "diffusivity_um2_per_ms=2\n[acquisition]\ndelta_ms=10\nDelta_ms=20\n"
        "b_s_per_mm2=[0, 1000]\n[output]\npath='x.csv'\n"
    )
    assert main(["simulate", str(path)]) == 1
    assert "radius must be positive" in capsys.readouterr().err


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
        '[shape]\nkind = "mesh"\npath = "cell.ply"\nunit = "um"\nlength_scale_um = 2.0\n'
        "[tissue]\ndiffusivity_um2_per_ms = 2.0\n[acquisition]\ndelta_ms = 10.0\n"
        "Delta_ms = 30.0\nb_s_per_mm2 = [0, 1000, 3000]\ndirections = 3\n"
    )
    assert main(["simulate", str(config), "-o", str(tmp_path / "out.csv")]) == 0
    columns, _ = read_table(tmp_path / "out.csv")
    acq = multi_shell(PGSE(10 * units.ms, 30 * units.ms), [0, 1e9, 3e9], 3)
    exact = signal(Compartment(sphere(5 * units.um), 2e-9), acq).real.numpy()
    np.testing.assert_allclose(columns["signal_abs"], exact, atol=3e-3)
