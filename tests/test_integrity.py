"""Stored artefacts are sealed (mf_dmri.io.sealed): truncated, damaged and swapped sweep
shards, sweep caches, sweep files and tables are detected every time, recomputed where
possible (the result equals an uninterrupted run), refused with a clear error otherwise;
a sweep resumed after a mesh file changed recomputes exactly that geometry's chunks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from file_damage import damage
from sweep_helpers import small_spec

from mf_dmri.geometry import sphere
from mf_dmri.io.mesh import save_surface
from mf_dmri.io.results import read_table, write_table
from mf_dmri.io.sealed import (
    CorruptArtefactError,
    StaleArtefactError,
    atomic_write,
    read_sealed,
    write_sealed,
)
from mf_dmri.io.sweep_cache import DiskBasisCache
from mf_dmri.io.sweep_provenance import sweep_provenance
from mf_dmri.io.sweep_store import SweepStore, read_sweep
from mf_dmri.io.sweep_toml import default_registry, spec_from_toml
from mf_dmri.sweep import DEFAULT_REGISTRY, build_plan, run_sweep
from mf_dmri.units import um

RNG_SEED = 20261203


@pytest.mark.parametrize("how", ["truncate", "flip", "empty"])
def test_sealed_file_damage_is_always_detected(tmp_path, how):
    rng = np.random.default_rng(RNG_SEED)
    path = tmp_path / "a.bin"
    payload = rng.bytes(5000)
    write_sealed(path, payload, {"mesh": "m1"})
    assert read_sealed(path, {"mesh": "m1"})[0] == payload
    good = path.read_bytes()
    for _ in range(50):
        path.write_bytes(good)
        damage(path, how, rng)
        with pytest.raises(CorruptArtefactError, match="delete it"):
            read_sealed(path, {"mesh": "m1"})


def test_sealed_file_from_other_inputs_is_stale(tmp_path):
    path = write_sealed(tmp_path / "a.bin", b"x", {"mesh": "m1", "settings": "s"})
    with pytest.raises(StaleArtefactError, match="another settings") as info:
        read_sealed(path, {"mesh": "m1", "settings": "t"})
    assert info.value.changed == "settings"


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def failing(handle):
        handle.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_atomic_write_gives_the_mode_of_an_ordinary_file(tmp_path, mask):
    """The temporary file of an atomic write is created 0600; the result must have the
    mode ``open()`` would give it (a PLY or CSV for colleagues to read)."""
    import os
    import stat

    previous = os.umask(mask)
    try:
        atomic_write(tmp_path / "a.csv", lambda handle: handle.write(b"x"))
        (tmp_path / "b.csv").write_bytes(b"x")
    finally:
        os.umask(previous)
    modes = [stat.S_IMODE((tmp_path / n).stat().st_mode) for n in ("a.csv", "b.csv")]
    assert modes[0] == modes[1] == 0o666 & ~mask


class Stop(Exception):
    pass


def run_store(spec, path, *, resume=False, stop_after=None, cache=None, registry=None):
    registry = registry or DEFAULT_REGISTRY
    plan = build_plan(spec, registry)
    store = SweepStore(path, plan, resume=resume)
    start = len(store.completed())

    def progress(update):
        if stop_after is not None and update.chunks_done - start >= stop_after:
            raise Stop

    result = run_sweep(plan, store, progress=progress, cache=cache, registry=registry)
    store.finalize(sweep_provenance(plan, device=result.device, executor="local"))
    return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "full.h5"
    run_store(small_spec(chunk_rows=2), path)
    return read_sweep(path)


@pytest.mark.parametrize("how", ["truncate", "flip", "empty", "swap"])
def test_damaged_shards_are_recomputed(tmp_path, reference, caplog, how):
    spec = small_spec(chunk_rows=2)
    out = tmp_path / "s.h5"
    with pytest.raises(Stop):
        run_store(spec, out, stop_after=4)
    shards = sorted((tmp_path / "s.h5.parts").glob("chunk_*.npz"))
    assert len(shards) == 4
    rng = np.random.default_rng(RNG_SEED)
    damage(shards[2], how, rng, other=shards[1])
    bad = 2 if how == "swap" else 1
    with caplog.at_level(logging.WARNING):
        result = run_store(spec, out, resume=True)
    assert "computing chunk" in caplog.text
    assert result.chunks_skipped == 4 - bad
    data = read_sweep(out)
    np.testing.assert_array_equal(data.signals, reference.signals)
    np.testing.assert_array_equal(data.error_bars, reference.error_bars)


def test_damaged_sweep_file_is_refused(tmp_path, reference):
    import h5py

    out = tmp_path / "s.h5"
    run_store(small_spec(chunk_rows=2), out)
    with h5py.File(out, "r+") as handle:
        handle["signals"][3, 1] = handle["signals"][3, 1] * (1 + 1e-12)
    with pytest.raises(CorruptArtefactError, match="do not match their SHA-256"):
        read_sweep(out)
    out.write_bytes(out.read_bytes()[:1000])
    with pytest.raises(CorruptArtefactError, match="run the sweep again"):
        read_sweep(out)


@pytest.mark.parametrize("how", ["truncate", "flip", "swap"])
def test_damaged_sweep_cache_is_solved_again(tmp_path, reference, caplog, how):
    spec = small_spec(chunk_rows=2)
    cache = DiskBasisCache(tmp_path / "cache")
    first = run_store(spec, tmp_path / "a.h5", cache=cache)
    files = sorted((tmp_path / "cache").glob("*.pt"))
    assert first.basis_solves == len(files) == 3
    damage(files[0], how, np.random.default_rng(RNG_SEED), other=files[1])
    with caplog.at_level(logging.WARNING):
        second = run_store(spec, tmp_path / "b.h5", cache=cache)
    assert "unusable sweep cache file" in caplog.text
    assert second.basis_solves == (2 if how == "swap" else 1)
    np.testing.assert_array_equal(read_sweep(tmp_path / "b.h5").signals, reference.signals)


MESH_SWEEP = """
[[geometry]]
shape = "mesh"
files = ["a.ply", "b.ply"]
unit = "um"
mesh_size_um = 1.5
length_scale_um = 3.0
[tissue]
diffusivity_um2_per_ms = [1.0, 2.5]
[[acquisition]]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000, 3000]
directions = 3
"""


def test_resume_after_a_mesh_file_changed_recomputes_its_chunks(tmp_path, caplog):
    """Killed after the first geometry, mesh file b.ply replaced, resumed: the chunks of
    b.ply are computed from the new file (equal to a fresh run); those of a.ply are kept."""
    registry = default_registry()
    save_surface(sphere(3 * um, subdivisions=1), tmp_path / "a.ply", unit=um)
    save_surface(sphere(2 * um, subdivisions=1), tmp_path / "b.ply", unit=um)
    spec = spec_from_toml(MESH_SWEEP, base_dir=tmp_path, registry=registry)
    out = tmp_path / "s.h5"
    with pytest.raises(Stop):
        run_store(spec, out, stop_after=1, registry=registry)
    save_surface(sphere(2.5 * um, subdivisions=1), tmp_path / "b.ply", unit=um)
    with caplog.at_level(logging.WARNING):
        result = run_store(spec, out, resume=True, registry=registry)
    assert result.chunks_skipped == 1 and result.chunks_computed == 1
    fresh = tmp_path / "fresh.h5"
    run_store(spec, fresh, registry=registry)
    np.testing.assert_array_equal(read_sweep(out).signals, read_sweep(fresh).signals)
    # the finished file names the mesh bytes it was made from: a later change is refused
    save_surface(sphere(2.2 * um, subdivisions=1), tmp_path / "b.ply", unit=um)
    with pytest.raises(ValueError, match="mesh file .*b.ply"):
        run_store(spec, out, resume=True, registry=registry)


def test_resume_after_a_mesh_file_changed_mid_chunk_is_warned(tmp_path, caplog):
    registry = default_registry()
    save_surface(sphere(3 * um, subdivisions=1), tmp_path / "a.ply", unit=um)
    save_surface(sphere(2 * um, subdivisions=1), tmp_path / "b.ply", unit=um)
    spec = spec_from_toml(MESH_SWEEP, base_dir=tmp_path, registry=registry)
    plan = build_plan(spec, registry)
    SweepStore(tmp_path / "s.h5", plan)
    save_surface(sphere(2.5 * um, subdivisions=1), tmp_path / "a.ply", unit=um)
    with caplog.at_level(logging.WARNING):
        SweepStore(tmp_path / "s.h5", plan, resume=True)
    assert "a.ply" in caplog.text and "changed since the interrupted run" in caplog.text


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_damaged_table_is_refused(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    columns = {"b_s_per_mm2": np.array([0.0, 1000.0]), "signal": np.array([1.0, 0.5])}
    write_table(path, columns, {"note": "x"})
    read_back, meta = read_table(path)
    np.testing.assert_array_equal(read_back["signal"], columns["signal"])
    assert len(meta["content_sha256"]) == 64
    if suffix == ".csv":
        path.write_text(path.read_text().replace("0.5", "0.6"))
    else:
        path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(CorruptArtefactError, match="run the simulation again"):
        read_table(path)


def test_simulated_nifti_is_sealed_in_its_sidecar(tmp_path):
    """mf-dmri simulate writes the SHA-256 of every NIfTI/bval/bvec file into the sidecar;
    read_dwi refuses an image or gradient table changed afterwards."""
    from mf_dmri.cli.main import main
    from mf_dmri.io.nifti import read_dwi

    config = tmp_path / "p.toml"
    config.write_text(
        '[[compartment]]\nname = "axon"\nshape = "cylinder"\nradius_um = [2.0, 4.0]\n'
        'diffusivity_um2_per_ms = 2.0\n[acquisition]\nsequence = "pgse"\n'
        "pulse_duration_ms = 10\npulse_separation_ms = 30\nb_s_per_mm2 = [0, 1000]\n"
        "directions = 3\n[phantom]\nshape = [2, 1, 1]\n"
    )
    dwi = tmp_path / "dwi.nii.gz"
    assert main(["simulate", str(config), "-o", str(dwi), "--no-progress"]) == 0
    image = read_dwi(dwi)
    assert set(image.sidecar["mf_dmri"]["content_sha256"]) >= {"dwi.nii.gz", "dwi.bval"}
    bval = tmp_path / "dwi.bval"
    bval.write_text(bval.read_text().replace("1000", "2000"))
    with pytest.raises(CorruptArtefactError, match="dwi.bval"):
        read_dwi(dwi)


def test_resume_after_a_kill_before_the_manifest_or_after_the_merge(tmp_path, reference):
    spec = small_spec(chunk_rows=2)
    out = tmp_path / "s.h5"
    (tmp_path / "s.h5.parts").mkdir()  # killed right after creating the folder
    run_store(spec, out, resume=True)
    np.testing.assert_array_equal(read_sweep(out).signals, reference.signals)
    (tmp_path / "s.h5.parts").mkdir()  # killed between the merge and the clean-up
    assert run_store(spec, out, resume=True).chunks_computed == 0
    assert not (tmp_path / "s.h5.parts").exists()
