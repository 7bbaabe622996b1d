"""On-disk cache of finite-element eigenbases, sealed (mf_dmri.io.sealed).

A cache file is an ``.npz`` archive of the :class:`~mf_dmri.eigenbasis.Eigenbasis` arrays
and the settings that produced it (JSON), followed by a seal: the SHA-256 of those bytes
and the digests of every input, namely ``mesh_sha256`` (the mesh arrays: nodes, elements,
labels as float64/int64 little-endian bytes with their shapes), ``settings`` (cutoff,
element order, cluster tolerance, axes, format version) and the mf_dmri version.  The
solver settings are not inputs: every setting returns the same basis to within its
tolerance.

Loading checks the seal: a truncated or damaged file (:class:`CorruptArtefactError`) or
one made from another mesh, other settings or another version, stale or swapped
(:class:`StaleArtefactError`, naming the input), is never used:
:func:`cached_mesh_eigenbasis` recomputes and overwrites it with a logged warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from mf_dmri.eigenbasis import CLUSTER_RTOL, Eigenbasis
from mf_dmri.fem.assembly import DEFAULT_ELEMENT_ORDER
from mf_dmri.fem.discretisation import attach_discretisation
from mf_dmri.fem.eigen import cutoff_eigenvalue, default_axes, mesh_eigenbasis
from mf_dmri.fem.eigensolver import ShiftInvertLanczos
from mf_dmri.fem.mesh_input import mesh_arrays
from mf_dmri.io.sealed import ArtefactError, StaleArtefactError, read_sealed, write_sealed

_LOG = logging.getLogger(__name__)

#: Bump when the file layout or the meaning of a field changes.
FORMAT_VERSION = 2


def mesh_sha256(nodes, elements=None, *, element_labels=None) -> str:
    """SHA-256 (hex) of the checked mesh arrays (nodes, elements, labels)."""
    points, cells, labels = mesh_arrays(nodes, elements, element_labels)
    digest = hashlib.sha256()
    for array in (points.astype("<f8"), cells.astype("<i8"), labels.astype("<i8")):
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def cache_inputs(nodes, elements=None, *, element_labels=None, settings: dict) -> dict[str, str]:
    """The input digests a cache file is sealed with: mesh arrays and settings."""
    return {
        "format": f"mf_dmri-eigen-cache-v{FORMAT_VERSION}",
        "mesh_sha256": mesh_sha256(nodes, elements, element_labels=element_labels),
        "settings": json.dumps(settings, sort_keys=True),
    }


def cache_key(nodes, elements=None, *, element_labels=None, settings: dict) -> str:
    """SHA-256 (hex) of the cache inputs: the default file name of a cached basis."""
    inputs = cache_inputs(nodes, elements, element_labels=element_labels, settings=settings)
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def save_eigenbasis(path: str | os.PathLike, basis: Eigenbasis, *, inputs: dict[str, str]) -> Path:
    """Write ``basis`` sealed with ``inputs`` (:func:`cache_inputs`) to ``path``, atomically."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        eigenvalues=basis.eigenvalues.detach().cpu().numpy(),
        moments=basis.moments.detach().cpu().numpy(),
        mode_integrals=basis.mode_integrals.detach().cpu().numpy(),
        volume=basis.volume.detach().cpu().numpy(),
        axes=basis.axes.detach().cpu().numpy(),
        label=np.array(basis.label),
    )
    return write_sealed(path, buffer.getvalue(), inputs)


def load_eigenbasis(path: str | os.PathLike, *, inputs: dict[str, str] | None = None) -> Eigenbasis:
    """Read a cached basis, checking its seal and, if given, the ``inputs`` it was made
    from: :class:`~mf_dmri.io.sealed.CorruptArtefactError` or
    :class:`~mf_dmri.io.sealed.StaleArtefactError` otherwise."""
    payload, _ = read_sealed(path, inputs)
    with np.load(io.BytesIO(payload), allow_pickle=False) as data:
        stored = {name: data[name] for name in data.files}
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
    order: int = DEFAULT_ELEMENT_ORDER,
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
        on_stale: "recompute" (overwrite a stale, swapped or damaged file, with a logged
            warning) or "raise" (its :class:`~mf_dmri.io.sealed.ArtefactError`).
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
    inputs = cache_inputs(nodes, elements, element_labels=element_labels, settings=settings)
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    path = Path(cache_dir) / f"{name or key[:24]}.npz"
    mesh = {
        "element_labels": element_labels,
        "order": order,
        "solver": solver,
        "cluster_rtol": cluster_rtol,
    }
    if path.exists():
        try:
            return attach_discretisation(
                load_eigenbasis(path, inputs=inputs), nodes, elements, **mesh
            )
        except ArtefactError as exc:
            if on_stale == "raise":
                raise
            kind = "stale" if isinstance(exc, StaleArtefactError) else "damaged"
            _LOG.warning("%s eigenbasis cache: %s; recomputing", kind, exc)
    basis = mesh_eigenbasis(nodes, elements, max_eigenvalue=lam_max, label=label, **mesh)
    save_eigenbasis(path, basis, inputs=inputs)
    return basis
