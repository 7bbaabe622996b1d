"""SIGKILL at random points of a sweep (CLI, with an eigenbasis cache) and of eigenbasis
cache writes: every resume finishes with the table of an uninterrupted run, no shard or
cache file on disk is ever partial (each passes its seal at every kill), and no resume ever
meets a damaged file (no 'damaged'/'unusable' warning).  The fast suite kills 4 times; the
slow test 20 times."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
from skfem import MeshTri

from mf_dmri.io.sealed import read_sealed
from mf_dmri.io.sweep_store import read_sweep

CONFIG = """
name = "kill-test"
seed = 5
chunk_rows = 3
[[geometry]]
shape = "cylinder"
radius_um = {grid = [1.0, 4.0], num = 6}
axis = [0.0, 0.0, 1.0]
length_scale_um = 1.5
[tissue]
diffusivity_um2_per_ms = [1.0, 2.0, 3.0]
t2_ms = [50.0, 90.0]
[[acquisition]]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000, 3000]
directions = 6
"""

FORK = multiprocessing.get_context("fork")


def _sweep(config, out, cache, log):
    import logging
    import sys

    import torch

    # A forked child must not enter the parent's OpenMP pool (it can deadlock inside a
    # matrix exponential, seen in the full suite): one thread runs inline.
    torch.set_num_threads(1)
    sys.stderr = sys.stdout = open(log, "a")  # noqa: SIM115 - the child is killed
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)
    from mf_dmri.cli.main import main

    os._exit(
        main(
            ["sweep", str(config), "--out", str(out), "--resume", "--no-progress"]
            + ["--cache-dir", str(cache)]
        )
    )


def _check_every_file_sealed(*folders):
    for folder in folders:
        if not folder.exists():
            continue
        for path in list(folder.glob("chunk_*.npz")) + list(folder.glob("*.pt")):
            try:
                read_sealed(path)
            except FileNotFoundError:  # removed by the merge after the listing
                continue


def _run(config, out, cache, log, kill_after=None):
    child = FORK.Process(target=_sweep, args=(config, out, cache, log))
    child.start()
    if kill_after is None:
        child.join(600)
        return child.exitcode
    child.join(kill_after)
    if child.exitcode is None:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    return child.exitcode


def kill_and_resume(tmp_path, kills: int, seed: int):
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG)
    reference = tmp_path / "reference.h5"
    start = time.perf_counter()
    assert _run(config, reference, tmp_path / "ref_cache", tmp_path / "ref.log") == 0
    duration = time.perf_counter() - start
    out, cache, log = tmp_path / "killed.h5", tmp_path / "cache", tmp_path / "killed.log"
    rng = np.random.default_rng(seed)
    finished_early, interrupted = 0, 0
    for _ in range(kills):
        if out.exists():  # a kill came too late: start again from nothing
            out.unlink()
            finished_early += 1
        _run(config, out, cache, log, kill_after=float(rng.uniform(0.0, 0.8 * duration)))
        parts = tmp_path / "killed.h5.parts"
        _check_every_file_sealed(parts, cache)
        interrupted += parts.exists() and any(parts.glob("chunk_*.npz"))
    assert _run(config, out, cache, log) == 0
    text = log.read_text()
    assert "damaged" not in text and "unusable" not in text, text
    expected, resumed = read_sweep(reference), read_sweep(out)
    np.testing.assert_array_equal(resumed.signals, expected.signals)
    np.testing.assert_array_equal(resumed.error_bars, expected.error_bars)
    for name, column in expected.parameters.items():
        np.testing.assert_array_equal(resumed.parameters[name], column)
    return finished_early, interrupted


def test_sweep_killed_four_times_resumes_to_the_same_table(tmp_path):
    finished_early, interrupted = kill_and_resume(tmp_path, kills=4, seed=1)
    assert interrupted >= 1, finished_early  # some kills hit the sweep mid-way


@pytest.mark.slow  # 20 kills: about a minute on 2 cores
def test_sweep_killed_twenty_times_resumes_to_the_same_table(tmp_path):
    finished_early, interrupted = kill_and_resume(tmp_path, kills=20, seed=2)
    assert interrupted >= 5, finished_early


def _cache_writer(folder):
    import torch

    from mf_dmri.io.eigen_cache import cached_mesh_eigenbasis

    torch.set_num_threads(1)  # forked child: see _sweep
    for refine in range(2, 6):
        disk = MeshTri.init_circle(refine)
        cached_mesh_eigenbasis(disk.p.T * 5e-6, disk.t.T, cache_dir=folder, length_scale=2e-6)
    os._exit(0)


def test_eigen_cache_killed_mid_write_never_leaves_a_partial_file(tmp_path):
    from mf_dmri.io.eigen_cache import cached_mesh_eigenbasis

    rng = np.random.default_rng(3)
    for _ in range(6):
        child = FORK.Process(target=_cache_writer, args=(tmp_path,))
        child.start()
        child.join(float(rng.uniform(0.0, 1.5)))
        if child.exitcode is None:
            os.kill(child.pid, signal.SIGKILL)
            child.join()
        for path in tmp_path.glob("*.npz"):
            read_sealed(path)  # whole, or not there at all
    disk = MeshTri.init_circle(3)
    fresh = cached_mesh_eigenbasis(
        disk.p.T * 5e-6, disk.t.T, cache_dir=tmp_path / "fresh", length_scale=2e-6
    )
    again = cached_mesh_eigenbasis(disk.p.T * 5e-6, disk.t.T, cache_dir=tmp_path, length_scale=2e-6)
    np.testing.assert_array_equal(again.eigenvalues.numpy(), fresh.eigenvalues.numpy())
