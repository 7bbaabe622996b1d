"""Signals of one geometry for many tissue points, batched in torch.

For a fixed geometry only the diffusivity changes the propagators: T2 and spin density
just reweight compartments.  So the attenuation of each compartment is computed once per
distinct diffusivity, all distinct diffusivities x all waveforms of a timing in one batched
propagation (``mf_dmri.signal.propagation.evaluate_factor``), then combined per tissue
point.  Per factor and timing, the piece plan and the exact reduction of the basis to the
reachable subspace (``prepare_factor``) depend only on the gradients: they are computed
once, the reachable subspaces shared between timings, and reused for every diffusivity.
"""

from __future__ import annotations

import numpy as np
import torch

from mf_dmri._checks import CDTYPE, DTYPE
from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.signal.api import free_signal
from mf_dmri.signal.propagation import (
    DEFAULT_CHUNK_BYTES,
    FactorPlan,
    evaluate_factor,
    prepare_factor,
)
from mf_dmri.sweep.acquisition import MeasurementTable, timing_pieces
from mf_dmri.sweep.plan import tissue_value


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
        self._subspaces: dict[tuple[str, int], dict] = {}
        self._prepared: dict[tuple[str, int, int], FactorPlan] = {}
        self._memo: dict[tuple[str, int, float], torch.Tensor] = {}

    def _prepare(self, name: str, factor: int, timing: int) -> FactorPlan:
        key = (name, factor, timing)
        if key not in self._prepared:
            basis = self.domains[name].factors[factor]
            subspaces = self._subspaces.setdefault((name, factor), {})
            self._prepared[key] = prepare_factor(basis, self._pieces[timing], subspaces=subspaces)
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
            domain = self.domains[name]
            result = free_signal(values, domain.free_axes, self._pieces[timing])
            for factor in range(len(domain.factors)):
                plan = self._prepare(name, factor, timing)
                result = result * evaluate_factor(
                    plan, values, max_chunk_bytes=self.max_chunk_bytes
                )
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
