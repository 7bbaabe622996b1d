"""Acceptance: 1,000 rows x 102 measurements over 10 geometries with one CLI command; a
hard-killed run (SIGKILL in a subprocess) resumes to exactly the uninterrupted result."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mf_dmri.io.sweep_store import read_sweep

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
name = "acceptance"
seed = 3
chunk_rows = 25

[[geometry]]
shape = "cylinder"
radius_um = {grid = [1.0, 3.0], num = 10}
length_scale_um = 2.0

[tissue]
diffusivity_um2_per_ms = {grid = [1.0, 3.0], num = 5}
t2_ms = {uniform = [40.0, 120.0], num = 20}

[[acquisition]]
sequence = "pgse"
pulse_duration_ms = [5, 10, 15]
pulse_separation_ms = [20, 30, 40]
timings_combine = "zip"
b_s_per_mm2 = [0, 1000, 2000, 3000]
directions = 11
"""

#: Runs the sweep like the CLI but SIGKILLs itself after N stored chunks (a hard kill at
#: a known point, so the test does not race against the process).
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from mf_dmri.io.sweep_store import SweepStore
    from mf_dmri.io.sweep_toml import load_sweep_toml
    from mf_dmri.sweep import DEFAULT_REGISTRY, build_plan, run_sweep
    plan = build_plan(load_sweep_toml(sys.argv[1]), DEFAULT_REGISTRY)
    store = SweepStore(sys.argv[2], plan)
    def progress(update):
        if update.chunks_done >= int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
    run_sweep(plan, store, progress=progress)
    """
)


def run_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mf_dmri.cli.sweep", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("acceptance") / "acceptance.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def uninterrupted(config):
    out = config.with_name("full.h5")
    done = run_cli(config, "--out", out, "--no-progress", "--table", config.with_name("t.csv"))
    assert done.returncode == 0, done.stderr
    assert "eigenbasis solves      10" in done.stdout
    return out


def test_one_command_sweep_of_1000_rows(uninterrupted, config):
    data = read_sweep(uninterrupted)
    assert data.signals.shape == (1000, 102)
    assert len(np.unique(data.parameters["radius"])) == 10
    assert np.all(np.isfinite(data.signals)) and np.all(np.abs(data.signals) <= 1 + 1e-12)
    assert len(config.with_name("t.csv").read_text().splitlines()) == 1001


def test_killed_sweep_resumes_to_the_same_table(uninterrupted, config):
    out = config.with_name("killed.h5")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(config), str(out), "13"],
        env=env,
        cwd=ROOT,
        timeout=600,
        capture_output=True,
    )
    assert killed.returncode == -9, killed.stderr
    shards = list(out.with_name("killed.h5.parts").glob("chunk_*.npz"))
    assert len(shards) == 13 and not out.exists()
    resumed = run_cli(config, "--out", out, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "chunks computed/resumed 27/13 of 40" in resumed.stdout
    full, again = read_sweep(uninterrupted), read_sweep(out)
    np.testing.assert_array_equal(again.signals, full.signals)
    assert list(again.parameters) == list(full.parameters)
    for name, column in full.parameters.items():
        np.testing.assert_array_equal(again.parameters[name], column)
    assert again.provenance["config_hash"] == full.provenance["config_hash"]
