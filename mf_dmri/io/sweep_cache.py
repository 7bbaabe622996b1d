"""On-disk cache of solved sweep geometries (``mf_dmri.sweep.engine.BasisCache``).

One ``.pt`` file per geometry, named by the SHA-256 of the builder inputs (shape, SI
parameters, options), the contents of the geometry's file if any, and the mf_dmri version,
so a changed mesh or package never reuses a stale basis.  A finite-element basis keeps its
mesh and element order (``Eigenbasis.discretisation``), so a basis read back gets the same
error bar, discretisation included (its eigensolver settings are not stored: the companion
solve of the bar uses the defaults).  Files are sealed
(mf_dmri.io.sealed: content SHA-256 and the digests of those inputs), written atomically and
loaded with ``weights_only=True`` (plain tensors, no pickled code).  A damaged, truncated,
stale or swapped file is not used: :meth:`DiskBasisCache.get` logs a warning and returns
None, so the geometry is solved again and the file rewritten.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import torch

from mf_dmri import __version__
from mf_dmri.eigenbasis import Eigenbasis, ProductDomain
from mf_dmri.fem.discretisation import FemDiscretisation
from mf_dmri.io.sealed import ArtefactError, file_sha256, read_sealed, write_sealed
from mf_dmri.sweep.plan import GeometryPoint

_LOG = logging.getLogger(__name__)


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
        "discretisation": _discretisation_dict(basis.discretisation),
    }


def _discretisation_dict(model: FemDiscretisation | None) -> dict | None:
    if model is None:
        return None
    return {
        "nodes": torch.tensor(model.nodes),
        "elements": torch.tensor(model.elements),
        "element_labels": torch.tensor(model.element_labels),
        "order": int(model.order),
        "cluster_rtol": float(model.cluster_rtol),
    }


def _basis_from(data: dict) -> Eigenbasis:
    data = dict(data)
    model = data.pop("discretisation", None)
    if model is not None:
        arrays = {k: model[k].numpy() for k in ("nodes", "elements", "element_labels")}
        model = FemDiscretisation(
            **arrays, order=model["order"], cluster_rtol=model["cluster_rtol"]
        )
    return Eigenbasis(**data, discretisation=model)


def _domain_dict(domain: ProductDomain) -> dict:
    return {
        "factors": [_basis_dict(f) for f in domain.factors],
        "free_axes": domain.free_axes.detach().cpu(),
        "free_extent": float(domain.free_extent),
    }


def _domain_from(data: dict) -> ProductDomain:
    return ProductDomain(
        factors=tuple(_basis_from(f) for f in data["factors"]),
        free_axes=data["free_axes"],
        free_extent=data["free_extent"],
    )


def geometry_inputs(point: GeometryPoint) -> dict[str, str]:
    """Digests of everything a solved geometry depends on: builder inputs and file bytes."""
    inputs = {"geometry": hashlib.sha256(point.key().encode()).hexdigest()}
    if point.file:
        inputs["mesh_file_sha256"] = file_sha256(point.file)
    return inputs


class DiskBasisCache:
    """Solved geometries kept in ``directory`` (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def key(self, point: GeometryPoint) -> str:
        digest = hashlib.sha256()
        for name, value in sorted(geometry_inputs(point).items()):
            digest.update(f"{name}={value};".encode())
        digest.update(__version__.encode())
        return digest.hexdigest()

    def _path(self, point: GeometryPoint) -> Path:
        return self.directory / f"{point.shape}_{self.key(point)[:32]}.pt"

    def get(self, point: GeometryPoint) -> dict[str, ProductDomain] | None:
        path = self._path(point)
        if not path.exists():
            return None
        try:
            payload, _ = read_sealed(path, geometry_inputs(point))
            data = torch.load(io.BytesIO(payload), weights_only=True)
            return {name: _domain_from(d) for name, d in data["compartments"].items()}
        except (ArtefactError, RuntimeError, KeyError, TypeError) as exc:
            _LOG.warning("unusable sweep cache file (%s): solving the geometry again", exc)
            return None

    def put(self, point: GeometryPoint, domains: dict[str, ProductDomain]) -> None:
        buffer = io.BytesIO()
        torch.save({"compartments": {n: _domain_dict(d) for n, d in domains.items()}}, buffer)
        write_sealed(self._path(point), buffer.getvalue(), geometry_inputs(point))
