"""Eigenbasis cache: round trip, key = SHA-256 of mesh + settings, stale files never used."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from skfem import MeshTri

from mf_dmri.io.eigen_cache import (
    StaleCacheError,
    cache_key,
    cached_mesh_eigenbasis,
    load_eigenbasis,
    save_eigenbasis,
)

CUTOFF = 4e12  # [1/m^2]


def mesh(scale=5e-6):
    disk = MeshTri.init_circle(3)
    return disk.p.T * scale, disk.t.T


def assert_same(a, b):
    for name in ("eigenvalues", "moments", "mode_integrals", "volume", "axes"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def test_round_trip_and_reuse(tmp_path, monkeypatch):
    nodes, elements = mesh()
    first = cached_mesh_eigenbasis(nodes, elements, cache_dir=tmp_path, max_eigenvalue=CUTOFF)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    import mf_dmri.io.eigen_cache as cache

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although a valid cache exists")

    monkeypatch.setattr(cache, "mesh_eigenbasis", fail)
    again = cached_mesh_eigenbasis(nodes, elements, cache_dir=tmp_path, max_eigenvalue=CUTOFF)
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
    cached_mesh_eigenbasis(nodes, elements, cache_dir=tmp_path, name="cell", max_eigenvalue=CUTOFF)
    bigger = nodes * 1.1
    with pytest.raises(StaleCacheError, match="another mesh"):
        cached_mesh_eigenbasis(
            bigger,
            elements,
            cache_dir=tmp_path,
            name="cell",
            max_eigenvalue=CUTOFF,
            on_stale="raise",
        )
    with caplog.at_level(logging.WARNING):
        fresh = cached_mesh_eigenbasis(
            bigger, elements, cache_dir=tmp_path, name="cell", max_eigenvalue=CUTOFF
        )
    assert "stale" in caplog.text
    # eigenvalues scale as 1/1.1^2: the stale (unscaled) basis was not used
    small = cached_mesh_eigenbasis(nodes, elements, cache_dir=tmp_path / "b", max_eigenvalue=CUTOFF)
    np.testing.assert_allclose(
        fresh.eigenvalues[1:3].numpy() * 1.21, small.eigenvalues[1:3].numpy(), rtol=1e-9
    )
    with pytest.raises(StaleCacheError):  # settings changed under the same name
        cached_mesh_eigenbasis(
            bigger,
            elements,
            cache_dir=tmp_path,
            name="cell",
            max_eigenvalue=2 * CUTOFF,
            on_stale="raise",
        )


def test_save_load_explicit_and_corrupt_file(tmp_path):
    nodes, elements = mesh()
    basis = cached_mesh_eigenbasis(nodes, elements, cache_dir=tmp_path, max_eigenvalue=CUTOFF)
    path = save_eigenbasis(tmp_path / "x.npz", basis, key="abc", settings={"a": 1})
    assert_same(load_eigenbasis(path, key="abc"), basis)
    with pytest.raises(StaleCacheError):
        load_eigenbasis(path, key="abd")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="delete"):
        load_eigenbasis(broken)
