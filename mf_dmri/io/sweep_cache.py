"""On-disk cache of solved sweep geometries (``mf_dmri.sweep.engine.BasisCache``).

One ``.pt`` file per geometry, named by the SHA-256 of the builder inputs (shape, SI
parameters, options), the contents of the geometry's file if any, and the mf_dmri version,
so a changed mesh or package never reuses a stale basis.  Files are written atomically and
loaded with ``weights_only=True`` (plain tensors, no pickled code).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from mf_dmri import __version__
from mf_dmri.eigenbasis import Eigenbasis, ProductDomain
from mf_dmri.sweep.plan import GeometryPoint


def _basis_dict(basis: Eigenbasis) -> dict:
    return {
        "eigenvalues": basis.eigenvalues.detach().cpu(),
        "moments": basis.moments.detach().cpu(),
        "mode_integrals": basis.mode_integrals.detach().cpu(),
        "volume": basis.volume.detach().cpu(),
        "axes": basis.axes.detach().cpu(),
        "label": basis.label,
        "isotropic": bool(basis.isotropic),
        "stiffness_coupling": None
        if basis.stiffness_coupling is None
        else basis.stiffness_coupling.detach().cpu(),
    }


def _domain_dict(domain: ProductDomain) -> dict:
    return {
        "factors": [_basis_dict(f) for f in domain.factors],
        "free_axes": domain.free_axes.detach().cpu(),
        "free_extent": float(domain.free_extent),
    }


def _domain_from(data: dict) -> ProductDomain:
    return ProductDomain(
        factors=tuple(Eigenbasis(**f) for f in data["factors"]),
        free_axes=data["free_axes"],
        free_extent=data["free_extent"],
    )


class DiskBasisCache:
    """Solved geometries kept in ``directory`` (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def key(self, point: GeometryPoint) -> str:
        digest = hashlib.sha256(point.key().encode())
        digest.update(__version__.encode())
        if point.file:
            from mf_dmri.io.sweep_store import file_sha256

            digest.update(file_sha256(point.file).encode())
        return digest.hexdigest()

    def _path(self, point: GeometryPoint) -> Path:
        return self.directory / f"{point.shape}_{self.key(point)[:32]}.pt"

    def get(self, point: GeometryPoint) -> dict[str, ProductDomain] | None:
        path = self._path(point)
        if not path.exists():
            return None
        data = torch.load(path, weights_only=True)
        return {name: _domain_from(d) for name, d in data["compartments"].items()}

    def put(self, point: GeometryPoint, domains: dict[str, ProductDomain]) -> None:
        path = self._path(point)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"compartments": {n: _domain_dict(d) for n, d in domains.items()}}, temporary)
        os.replace(temporary, path)
