"""The ``sweep`` subcommand: registration, dry run of the shipped example, a small run
with table export, and clear errors."""

import argparse
from pathlib import Path

import numpy as np
import pytest

from mf_dmri.cli import sweep as sweep_cli
from mf_dmri.io.sweep_store import read_sweep

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "sweep_cylinders.toml"

SMALL = """
chunk_rows = 4
[[geometry]]
shape = "sphere"
radius_um = [2.0, 3.0]
length_scale_um = 2.0
[tissue]
diffusivity_um2_per_ms = [1.0, 2.0]
t2_ms = [50, 80, 110]
[[acquisition]]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000]
directions = [[1, 0, 0], [0, 1, 0]]
"""


def parse(*argv):
    parser = argparse.ArgumentParser(prog="mf-dmri")
    sweep_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sweep", *map(str, argv)])


def test_dry_run_of_the_example(capsys):
    args = parse(EXAMPLE, "--dry-run")
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "1200 rows (12 geometries x 100 tissue points) x 102 measurements" in out


@pytest.mark.parametrize("config", sorted(EXAMPLES.glob("sweep_*.toml")), ids=lambda p: p.name)
def test_every_example_config_is_valid(config, capsys):
    args = parse(config, "--dry-run")
    assert args.func(args) == 0
    assert "rows" in capsys.readouterr().out


def test_small_run_writes_file_table_and_summary(tmp_path, capsys):
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    out, table = tmp_path / "small.h5", tmp_path / "small.csv"
    args = parse(
        config, "--out", out, "--table", table, "--device", "cpu", "--cache-dir", tmp_path / "cache"
    )
    assert args.func(args) == 0
    summary = capsys.readouterr().out
    assert "rows x measurements    12 x 3" in summary
    assert "eigenbasis solves      2 (cache hits 0" in summary
    assert read_sweep(out).signals.shape == (12, 3)
    assert len(table.read_text().splitlines()) == 13
    assert "sweep CONFIG" not in summary
    # a second run into another file: the cache serves both geometries
    args = parse(
        config, "--out", tmp_path / "again.h5", "--no-progress", "--cache-dir", tmp_path / "cache"
    )
    assert args.func(args) == 0
    assert "eigenbasis solves      0 (cache hits 2" in capsys.readouterr().out


def test_permeable_example_runs_with_a_cache_dir(tmp_path, capsys):
    """examples/sweep_permeable.toml: 4 coupled points, one solve each, never cached (the
    basis cache holds impermeable bases only); every row has its (finite) error bar."""
    out, table = tmp_path / "permeable.h5", tmp_path / "permeable.csv"
    cache = tmp_path / "cache"
    args = parse(
        EXAMPLES / "sweep_permeable.toml", "--out", out, "--table", table, "--cache-dir", cache
    )
    assert args.func(args) == 0
    summary = capsys.readouterr().out
    assert "rows x measurements    4 x 13" in summary
    assert "eigenbasis solves      4 (cache hits 0" in summary and "one solve each" in summary
    data = read_sweep(out)
    assert data.signals.shape == (4, 13) and np.isfinite(data.error_bars).all()
    assert (data.error_bars > 0).all() and data.error_bars.max() < 1e-2
    assert sorted(data.parameters["permeability"]) == pytest.approx([0, 0, 1e-5, 1e-5])
    assert abs(data.signals[:, 0]).max() < 1  # T2 and surface relaxation at b = 0
    header = table.read_text().splitlines()[0]
    assert "permeability_um_per_ms" in header and "extra.surface_relaxivity_um_per_ms" in header


def test_errors_are_reported_not_raised(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(SMALL.replace("radius_um", "radius"))
    assert sweep_cli.main([str(config)]) == 1
    assert "radius is a length and needs a unit" in capsys.readouterr().err
    assert sweep_cli.main([str(tmp_path / "missing.toml")]) == 1
    with pytest.raises(SystemExit):
        parse()  # CONFIG is required
