"""Eigenbasis cache: round trip, key = SHA-256 of mesh + settings; stale, swapped, truncated
and damaged files are detected every time and never used."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from file_damage import damage
from skfem import MeshTri

from mf_dmri.io.eigen_cache import (
    cache_inputs,
    cache_key,
    cached_mesh_eigenbasis,
    load_eigenbasis,
    save_eigenbasis,
)
from mf_dmri.io.sealed import CorruptArtefactError, StaleArtefactError

CUTOFF = 4e12  # [1/m^2]


def mesh(scale=5e-6):
    disk = MeshTri.init_circle(3)
    return disk.p.T * scale, disk.t.T


def assert_same(a, b):
    for name in ("eigenvalues", "moments", "mode_integrals", "volume", "axes"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def test_round_trip_and_reuse(tmp_path, monkeypatch):
    nodes, elements = mesh()
    first = cached_mesh_eigenbasis(
        nodes, elements, cache_dir=tmp_path, max_eigenvalue=CUTOFF, order=1
    )
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    import mf_dmri.io.eigen_cache as cache

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although a valid cache exists")

    monkeypatch.setattr(cache, "mesh_eigenbasis", fail)
    again = cached_mesh_eigenbasis(
        nodes, elements, cache_dir=tmp_path, max_eigenvalue=CUTOFF, order=1
    )
    assert_same(first, again)


def test_key_changes_with_mesh_and_settings():
    nodes, elements = mesh()
    base = cache_key(nodes, elements, settings={"max_eigenvalue": 1.0})
    moved = nodes.copy()
    moved[0, 0] += 1e-12
    assert cache_key(moved, elements, settings={"max_eigenvalue": 1.0}) != base
    assert cache_key(nodes, elements[:, [1, 0, 2]], settings={"max_eigenvalue": 1.0}) != base
    assert cache_key(nodes, elements, settings={"max_eigenvalue": 2.0}) != base
    assert cache_key(nodes, elements, settings={"max_eigenvalue": 1.0}) == base


def test_stale_file_is_detected(tmp_path, caplog):
    nodes, elements = mesh()
    cached_mesh_eigenbasis(
        nodes, elements, cache_dir=tmp_path, name="cell", max_eigenvalue=CUTOFF, order=1
    )
    bigger = nodes * 1.1
    with pytest.raises(StaleArtefactError, match="another mesh_sha256"):
        cached_mesh_eigenbasis(
            bigger,
            elements,
            cache_dir=tmp_path,
            name="cell",
            max_eigenvalue=CUTOFF,
            on_stale="raise",
            order=1,
        )
    with caplog.at_level(logging.WARNING):
        fresh = cached_mesh_eigenbasis(
            bigger, elements, cache_dir=tmp_path, name="cell", max_eigenvalue=CUTOFF, order=1
        )
    assert "stale" in caplog.text
    # eigenvalues scale as 1/1.1^2: the stale (unscaled) basis was not used
    small = cached_mesh_eigenbasis(
        nodes, elements, cache_dir=tmp_path / "b", max_eigenvalue=CUTOFF, order=1
    )
    np.testing.assert_allclose(
        fresh.eigenvalues[1:3].numpy() * 1.21, small.eigenvalues[1:3].numpy(), rtol=1e-9
    )
    with pytest.raises(StaleArtefactError, match="settings"):  # settings changed, same name
        cached_mesh_eigenbasis(
            bigger,
            elements,
            cache_dir=tmp_path,
            name="cell",
            max_eigenvalue=2 * CUTOFF,
            on_stale="raise",
            order=1,
        )


def test_save_load_explicit_and_corrupt_file(tmp_path):
    nodes, elements = mesh()
    basis = cached_mesh_eigenbasis(
        nodes, elements, cache_dir=tmp_path, max_eigenvalue=CUTOFF, order=1
    )
    inputs = {"mesh_sha256": "abc", "settings": "{}"}
    path = save_eigenbasis(tmp_path / "x.npz", basis, inputs=inputs)
    assert_same(load_eigenbasis(path, inputs=inputs), basis)
    with pytest.raises(StaleArtefactError, match="mesh_sha256"):
        load_eigenbasis(path, inputs={**inputs, "mesh_sha256": "abd"})
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(CorruptArtefactError, match="delete"):
        load_eigenbasis(broken)


@pytest.mark.parametrize("how", ["truncate", "flip", "empty"])
def test_damaged_cache_detected_and_recomputed(tmp_path, caplog, how):
    """Every damaged file is detected (20 random damages each): loading raises, the cached
    call recomputes the same basis with a warning."""
    nodes, elements = mesh()
    reference = cached_mesh_eigenbasis(
        nodes, elements, cache_dir=tmp_path, max_eigenvalue=CUTOFF, order=1
    )
    (path,) = tmp_path.glob("*.npz")
    good = path.read_bytes()
    rng = np.random.default_rng(7)
    for _ in range(20):
        path.write_bytes(good)
        damage(path, how, rng)
        with pytest.raises(CorruptArtefactError):
            load_eigenbasis(path)
    with caplog.at_level(logging.WARNING):
        again = cached_mesh_eigenbasis(
            nodes, elements, cache_dir=tmp_path, max_eigenvalue=CUTOFF, order=1
        )
    assert "damaged eigenbasis cache" in caplog.text
    assert_same(again, reference)
    assert path.read_bytes() == good  # rewritten whole


def test_swapped_cache_files_detected(tmp_path, caplog):
    """Two cache files swapped on disk: each is refused as made from another mesh, and
    recomputed (not used as it is)."""
    nodes, elements = mesh()
    small = cached_mesh_eigenbasis(
        nodes, elements, cache_dir=tmp_path, name="a", max_eigenvalue=CUTOFF, order=1
    )
    large = cached_mesh_eigenbasis(
        nodes * 1.2, elements, cache_dir=tmp_path, name="b", max_eigenvalue=CUTOFF, order=1
    )
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    settings_inputs = cache_inputs(
        nodes, elements, settings={"max_eigenvalue": 0.0}
    )  # only the mesh digest matters here
    with pytest.raises(StaleArtefactError, match="mesh_sha256"):
        load_eigenbasis(a, inputs={"mesh_sha256": settings_inputs["mesh_sha256"]})
    with caplog.at_level(logging.WARNING):
        again = cached_mesh_eigenbasis(
            nodes, elements, cache_dir=tmp_path, name="a", max_eigenvalue=CUTOFF, order=1
        )
    assert "stale eigenbasis cache" in caplog.text
    assert_same(again, small)
    assert not torch.equal(again.eigenvalues[1:3], large.eigenvalues[1:3])
