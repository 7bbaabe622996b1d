"""On-disk cache of finite-element eigenbases (.npz), keyed by a SHA-256 of mesh + settings.

A cache file stores the :class:`~mf_dmri.eigenbasis.Eigenbasis` arrays, the settings that
produced it (JSON) and ``key``: the SHA-256 of the mesh arrays (nodes, elements, labels, as
float64/int64 little-endian bytes with their shapes) and of the settings that change the
result (cutoff, element order, cluster tolerance, axes, format version).  The solver settings
are not part of the key: every setting returns the same basis to within its tolerance.

Loading checks the key: a file whose key differs from the mesh/settings in hand is stale and
is never used silently (:class:`StaleCacheError`, or recomputed and overwritten with a logged
warning by :func:`cached_mesh_eigenbasis`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from mf_dmri.eigenbasis import CLUSTER_RTOL, Eigenbasis
from mf_dmri.fem.eigen import cutoff_eigenvalue, default_axes, mesh_eigenbasis
from mf_dmri.fem.eigensolver import ShiftInvertLanczos
from mf_dmri.fem.mesh_input import mesh_arrays

_LOG = logging.getLogger(__name__)

#: Bump when the file layout or the meaning of a field changes.
FORMAT_VERSION = 1


class StaleCacheError(RuntimeError):
    """A cache file was written for another mesh or other settings."""


def cache_key(nodes, elements=None, *, element_labels=None, settings: dict) -> str:
    """SHA-256 (hex) of the checked mesh arrays and the result-defining ``settings``."""
    points, cells, labels = mesh_arrays(nodes, elements, element_labels)
    digest = hashlib.sha256()
    digest.update(f"mf_dmri-eigen-cache-v{FORMAT_VERSION}".encode())
    for array in (points.astype("<f8"), cells.astype("<i8"), labels.astype("<i8")):
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def save_eigenbasis(
    path: str | os.PathLike, basis: Eigenbasis, *, key: str, settings: dict
) -> Path:
    """Write ``basis`` with its cache ``key`` and ``settings`` to ``path`` (.npz), atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial.npz")
    np.savez(
        partial,
        eigenvalues=basis.eigenvalues.detach().cpu().numpy(),
        moments=basis.moments.detach().cpu().numpy(),
        mode_integrals=basis.mode_integrals.detach().cpu().numpy(),
        volume=basis.volume.detach().cpu().numpy(),
        axes=basis.axes.detach().cpu().numpy(),
        label=np.array(basis.label),
        key=np.array(key),
        settings=np.array(json.dumps(settings, sort_keys=True)),
        format_version=np.array(FORMAT_VERSION),
    )
    os.replace(partial, target)
    return target


def load_eigenbasis(path: str | os.PathLike, *, key: str | None = None) -> Eigenbasis:
    """Read a cached basis; with ``key``, raise :class:`StaleCacheError` if it differs."""
    source = Path(path)
    try:
        with np.load(source, allow_pickle=False) as data:
            stored = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read eigenbasis cache {source}: {exc}; delete the file") from exc
    version = int(stored.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise StaleCacheError(
            f"{source} has cache format {version}, expected "
            f"{FORMAT_VERSION}; delete it to recompute"
        )
    if key is not None and str(stored["key"]) != key:
        raise StaleCacheError(
            f"{source} was computed for another mesh or other settings "
            "(key mismatch); delete it or recompute"
        )
    return Eigenbasis(
        eigenvalues=torch.as_tensor(stored["eigenvalues"]),
        moments=torch.as_tensor(stored["moments"]),
        mode_integrals=torch.as_tensor(stored["mode_integrals"]),
        volume=torch.as_tensor(stored["volume"]),
        axes=torch.as_tensor(stored["axes"]),
        label=str(stored["label"]),
    )


def cached_mesh_eigenbasis(
    nodes,
    elements=None,
    *,
    cache_dir: str | os.PathLike,
    name: str | None = None,
    element_labels=None,
    length_scale: float | None = None,
    max_eigenvalue: float | None = None,
    order: int = 1,
    solver: ShiftInvertLanczos | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    on_stale: str = "recompute",
    label: str = "",
) -> Eigenbasis:
    """:func:`mf_dmri.fem.eigen.mesh_eigenbasis`, cached in ``cache_dir``.

    Args:
        nodes, elements, element_labels, length_scale [m], max_eigenvalue [1/m^2], order,
            solver, cluster_rtol, label: as for ``mesh_eigenbasis``.
        cache_dir: folder of the cache files.
        name: file stem; default: the first 24 hex digits of the key (then a changed mesh
            simply maps to another file).  A fixed name makes a changed mesh hit a stale file.
        on_stale: "recompute" (overwrite a stale file, with a logged warning) or "raise".
    """
    if on_stale not in ("recompute", "raise"):
        raise ValueError(f"on_stale must be 'recompute' or 'raise', got {on_stale!r}")
    lam_max = cutoff_eigenvalue(length_scale, max_eigenvalue)
    points, _, _ = mesh_arrays(nodes, elements, element_labels)
    settings = {
        "max_eigenvalue": float.hex(lam_max),
        "order": int(order),
        "cluster_rtol": float.hex(float(cluster_rtol)),
        "axes": default_axes(points.shape[1]).tolist(),
    }
    key = cache_key(nodes, elements, element_labels=element_labels, settings=settings)
    path = Path(cache_dir) / f"{name or key[:24]}.npz"
    if path.exists():
        try:
            return load_eigenbasis(path, key=key)
        except StaleCacheError:
            if on_stale == "raise":
                raise
            _LOG.warning("stale eigenbasis cache %s (mesh or settings changed): recomputing", path)
    basis = mesh_eigenbasis(
        nodes,
        elements,
        element_labels=element_labels,
        max_eigenvalue=lam_max,
        order=order,
        solver=solver,
        cluster_rtol=cluster_rtol,
        label=label,
    )
    save_eigenbasis(path, basis, key=key, settings=settings)
    return basis
