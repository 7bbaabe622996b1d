"""Signals of one geometry for many tissue points, batched in torch.

For a fixed geometry only the diffusivity changes the propagators: T2 and spin density
just reweight compartments.  So the attenuation of each compartment is computed once per
distinct diffusivity, all distinct diffusivities x all measurements of a timing in one
batched ``matrix_exp`` per distinct gradient piece (split to respect a memory budget),
then combined per tissue point.  Per factor and timing, the piece plan and the exact
reduction of the basis to the reachable subspace (``mf_dmri.signal.reduction``) depend
only on the gradients and are computed once and reused for every diffusivity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri._checks import CDTYPE, DTYPE
from mf_dmri.eigenbasis import Eigenbasis, ProductDomain
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.propagation import (
    DEFAULT_CHUNK_BYTES,
    canonical_gradients,
    chunk_size,
    plan_pieces,
    propagate,
)
from mf_dmri.signal.reduction import reduced_data
from mf_dmri.sweep.acquisition import MeasurementTable, timing_pieces
from mf_dmri.sweep.plan import tissue_value


@dataclass
class _FactorTiming:
    """Diffusivity-independent data of one restricted factor under one timing: the rows
    propagated (``local``; for an isotropic basis the distinct canonical waveforms, mapped
    back to the measurements by ``inverse``), their piece plans and eigen-data."""

    basis: Eigenbasis
    durations: torch.Tensor
    local: torch.Tensor
    plans: list
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    gamma: float
    inverse: torch.Tensor | None


def _full(basis: Eigenbasis):
    return (basis.eigenvalues[None], basis.moments[None], basis.mode_integrals[None])


def _factor_data(basis: Eigenbasis, all_pieces: list[GradientPieces]):
    """(isotropic, eigen-data) for every measurement of every timing, as the signal layer
    does it (``mf_dmri.signal.propagation.factor_signal``): an isotropic basis (analytic
    disk, ball) whose waveforms each use one direction needs one reduced basis for all
    measurements; otherwise the exact per-measurement reduction (which depends only on the
    directions used), or the full basis when it has a stiffness coupling or nothing is
    gained."""
    width = max(p.num_pieces for p in all_pieces)
    local = torch.cat(
        [
            torch.nn.functional.pad(
                p.gradients.to(basis.device) @ basis.axes.T, (0, 0, 0, width - p.num_pieces)
            )
            for p in all_pieces
        ]
    )
    if basis.stiffness_coupling is not None:
        return False, _full(basis)
    if basis.isotropic and canonical_gradients(local) is not None:
        first_axis = torch.zeros(1, 1, basis.dimension, dtype=local.dtype, device=local.device)
        first_axis[..., 0] = 1.0
        return True, reduced_data(basis, first_axis) or _full(basis)
    return False, reduced_data(basis, local) or _full(basis)


def _factor_timing(
    basis: Eigenbasis, pieces: GradientPieces, isotropic: bool, data, index: torch.Tensor
) -> _FactorTiming:
    durations = pieces.durations.to(basis.device)
    local = pieces.gradients.to(basis.device) @ basis.axes.T
    inverse = None
    if isotropic:
        rows, inverse = torch.unique(canonical_gradients(local)[..., 0], dim=0, return_inverse=True)
        local = torch.zeros(rows.shape + (basis.dimension,), dtype=rows.dtype, device=rows.device)
        local[..., 0] = rows
    else:
        data = tuple(x if x.shape[0] == 1 else x[index] for x in data)
    plans = plan_pieces(durations, local)
    return _FactorTiming(basis, durations, local, plans, data, pieces.gyromagnetic_ratio, inverse)


def stacked_factor_signal(
    prepared: _FactorTiming, diffusivities: torch.Tensor, max_chunk_bytes: int
) -> torch.Tensor:
    """Normalised factor signal for every diffusivity (U,) [m^2/s] x measurement, (U, M)."""
    count_m = prepared.local.shape[0]
    count_u = diffusivities.numel()
    total = count_m * count_u
    num_new = sum(p.kind == "new" for p in prepared.plans)
    step = chunk_size(prepared.data[0].shape[-1], num_new, max_chunk_bytes)
    flat = torch.arange(total, device=prepared.local.device)
    outputs = []
    for start in range(0, total, step):
        index = flat[start : start + step]
        measurement, which = index % count_m, index // count_m
        part = tuple(x if x.shape[0] == 1 else x[measurement] for x in prepared.data)
        outputs.append(
            propagate(
                *part,
                diffusivities[which][:, None],
                prepared.durations,
                prepared.local[measurement],
                prepared.plans,
                prepared.gamma,
                False,
                prepared.basis.stiffness_coupling,
            )
        )
    result = torch.cat(outputs).reshape(count_u, count_m) / prepared.basis.volume
    return result if prepared.inverse is None else result[:, prepared.inverse]


class GeometrySimulator:
    """Signals of one geometry (its compartments) for any tissue points.

    Args:
        domains: ``{compartment name: ProductDomain}`` of the geometry.
        measurements: the sweep's measurement table.
        normalize: divide by the sum of volume x spin density (dimensionless signal).
        device: torch device for the computation.
        max_chunk_bytes: memory budget of one batch of matrix exponentials [bytes].
    """

    def __init__(
        self,
        domains: dict[str, ProductDomain],
        measurements: MeasurementTable,
        *,
        normalize: bool = True,
        device: torch.device | str = "cpu",
        max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        self.device = torch.device(device)
        self.domains = {name: d.to(self.device) for name, d in domains.items()}
        self.measurements = measurements
        self.normalize = normalize
        self.max_chunk_bytes = max_chunk_bytes
        self._pieces = [timing_pieces(measurements, t) for t in measurements.timings]
        self._reduced: dict[tuple[str, int], tuple] = {}
        self._prepared: dict[tuple[str, int, int], _FactorTiming] = {}
        self._memo: dict[tuple[str, int, float], torch.Tensor] = {}

    def _prepare(self, name: str, factor: int, timing: int) -> _FactorTiming:
        key = (name, factor, timing)
        if key not in self._prepared:
            basis = self.domains[name].factors[factor]
            if (name, factor) not in self._reduced:
                self._reduced[(name, factor)] = _factor_data(basis, self._pieces)
            index = torch.as_tensor(self.measurements.timings[timing].indices, device=self.device)
            isotropic, data = self._reduced[(name, factor)]
            self._prepared[key] = _factor_timing(
                basis, self._pieces[timing], isotropic, data, index
            )
        return self._prepared[key]

    def attenuation(self, name: str, timing: int, diffusivities: np.ndarray) -> torch.Tensor:
        """Attenuation of compartment ``name`` under ``timing`` for each diffusivity
        [m^2/s], complex (U, M_timing); memoised per diffusivity value."""
        missing = sorted(
            {float(d) for d in diffusivities}
            - {k[2] for k in self._memo if k[:2] == (name, timing)}
        )
        if missing:
            values = torch.tensor(missing, dtype=DTYPE, device=self.device)
            pieces = self._pieces[timing]
            domain = self.domains[name]
            result = _free_attenuation(domain, values, pieces)
            for factor in range(len(domain.factors)):
                prepared = self._prepare(name, factor, timing)
                result = result * stacked_factor_signal(prepared, values, self.max_chunk_bytes)
            for value, row in zip(missing, result):
                self._memo[(name, timing, value)] = row
        return torch.stack([self._memo[(name, timing, float(d))] for d in diffusivities])

    def signals(self, tissue: dict[str, np.ndarray]) -> torch.Tensor:
        """Signals of the tissue points (columns of equal length K), complex128 (K, M)."""
        count = next(iter(tissue.values())).size
        result = torch.zeros(count, self.measurements.count, dtype=CDTYPE, device=self.device)
        reference = torch.zeros(count, dtype=DTYPE, device=self.device)
        properties = {name: self._properties(tissue, name, count) for name in self.domains}
        for name, (_, _, density) in properties.items():
            reference = reference + self.domains[name].volume * density
        for timing, pieces in enumerate(self._pieces):
            echo_time = pieces.echo_time.to(self.device)
            total = 0
            for name, (diffusivity, t2, density) in properties.items():
                weight = self.domains[name].volume * density * torch.exp(-echo_time / t2)
                attenuation = self.attenuation(name, timing, diffusivity)
                total = total + weight[:, None] * attenuation
            index = torch.as_tensor(self.measurements.timings[timing].indices, device=self.device)
            result[:, index] = total.to(CDTYPE)
        if self.normalize:
            if bool((reference <= 0).any()):
                raise ValueError("a tissue point has zero spin density in every compartment")
            result = result / reference[:, None]
        return result

    def _properties(self, tissue, name, count):
        diffusivity = tissue_value(tissue, name, "diffusivity")
        if diffusivity is None:
            raise ValueError(f"no diffusivity for compartment {name!r}: add it to [tissue]")
        t2 = tissue_value(tissue, name, "t2")
        density = tissue_value(tissue, name, "spin_density")
        as_tensor = lambda v, default: torch.as_tensor(  # noqa: E731
            np.full(count, default) if v is None else v, dtype=DTYPE, device=self.device
        )
        return np.asarray(diffusivity, dtype=float), as_tensor(t2, np.inf), as_tensor(density, 1.0)


def _free_attenuation(
    domain: ProductDomain, diffusivities: torch.Tensor, pieces: GradientPieces
) -> torch.Tensor:
    """exp(-D sum_k a_k^T B a_k) along the free axes, complex (U, M)."""
    axes = domain.free_axes
    count = pieces.num_measurements
    if axes.shape[0] == 0:
        return torch.ones(diffusivities.numel(), count, dtype=CDTYPE, device=axes.device)
    btensors = pieces.btensors().to(axes.device)
    projected = torch.einsum("ka,mab,kb->m", axes, btensors, axes)
    return torch.exp(-diffusivities[:, None] * projected[None]).to(CDTYPE)
