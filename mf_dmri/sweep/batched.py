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
from mf_dmri.plausibility import CHECKED, Plausibility
from mf_dmri.signal.api import free_signal
from mf_dmri.signal.cutoff import DEFAULT_MEMORY_BUDGET, DEFAULT_TOLERANCE, adapted_factor
from mf_dmri.signal.propagation import (
    DEFAULT_CHUNK_BYTES,
    FactorPlan,
    evaluate_factor,
    prepare_factor,
)
from mf_dmri.signal.waveform_error import coarse_waveform_error
from mf_dmri.sweep.acquisition import MeasurementTable, timing_acquisition, timing_pieces
from mf_dmri.sweep.plan import tissue_value


class GeometrySimulator:
    """Signals of one geometry (its compartments) for any tissue points.

    Args:
        domains: ``{compartment name: ProductDomain}`` of the geometry.
        measurements: the sweep's measurement table.
        normalize: divide by the sum of volume x spin density (dimensionless signal).
        device: torch device for the computation.
        max_chunk_bytes: memory budget of one batch of matrix exponentials [bytes].
        diffusivity_ranges: per compartment the smallest and largest diffusivity of the
            sweep [m^2/s], where the error bars are evaluated.
        plausibility: override of the range checks of those compartments
            (``mf_dmri.plausibility``; the sweep's ``[checks]``).
    """

    def __init__(
        self,
        domains: dict[str, ProductDomain],
        measurements: MeasurementTable,
        *,
        normalize: bool = True,
        device: torch.device | str = "cpu",
        max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        diffusivity_ranges: dict[str, tuple[float, float]] | None = None,
        plausibility: Plausibility = CHECKED,
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
        self._bars: dict[tuple[str, int], torch.Tensor] = {}
        self.diffusivity_ranges = dict(diffusivity_ranges or {})
        self.plausibility = plausibility

    def _prepare(self, name: str, factor: int, timing: int) -> FactorPlan:
        key = (name, factor, timing)
        if key not in self._prepared:
            basis = self._adapted(name, factor, timing)
            subspaces = self._subspaces.setdefault((name, factor, timing), {})
            self._prepared[key] = prepare_factor(basis, self._pieces[timing], subspaces=subspaces)
        return self._prepared[key]

    def _adapted(self, name: str, factor: int, timing: int):
        """The factor at the standalone a-priori cutoff of :mod:`mf_dmri.signal.cutoff` for the
        smallest diffusivity of the sweep (the finest cutoff of its range), if it carries a
        source; else as given."""
        domain = self.domains[name]
        basis = domain.factors[factor]
        low = self.diffusivity_ranges.get(name, (None, None))[0]
        if basis.source is None or low is None:
            return basis
        share = DEFAULT_TOLERANCE["analytic"] / len(domain.factors)
        pieces = self._pieces[timing]
        return adapted_factor(basis, low, pieces, share, DEFAULT_MEMORY_BUDGET, standalone=True)

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
        return self._combine(tissue, with_error=False)[0]

    def signals_with_error(
        self, tissue: dict[str, np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Signals (K, M) and their error bars (K, M) [signal unit]: per compartment and
        timing, the larger of the bars of :func:`mf_dmri.signal.signal_with_error` at the
        smallest and the largest diffusivity of the sweep (``diffusivity_ranges``), each
        plus the distance of the sweep's own signal (at the a-priori cutoff, which the
        check may climb past) to the checked one, weighted like the signals (a bound by
        the triangle inequality at those two diffusivities; for diffusivities in between
        it is an estimate, not a proof), plus, for a smooth waveform, the error of its
        default pieces, which the sweep keeps
        (:func:`~mf_dmri.signal.waveform_error.coarse_waveform_error`)."""
        return self._combine(tissue, with_error=True)

    def _combine(self, tissue, with_error: bool):
        count = next(iter(tissue.values())).size
        result = torch.zeros(count, self.measurements.count, dtype=CDTYPE, device=self.device)
        bars = torch.zeros(count, self.measurements.count, dtype=DTYPE, device=self.device)
        properties = {name: self._properties(tissue, name, count) for name in self.domains}
        sizes = self._sizes(tissue, count, properties)
        reference = sum(sizes[name] * density for name, (_, _, density) in properties.items())
        if self.normalize and bool((reference <= 0).any()):
            raise ValueError("a tissue point has zero spin density in every compartment")
        scale = reference if self.normalize else torch.ones_like(reference)
        for timing, pieces in enumerate(self._pieces):
            echo_time = pieces.echo_time.to(self.device)
            total, bar = 0, 0
            for name, (diffusivity, t2, density) in properties.items():
                weight = sizes[name] * density * torch.exp(-echo_time / t2) / scale
                attenuation = self.attenuation(name, timing, diffusivity)
                total = total + weight[:, None] * attenuation
                if with_error:
                    bar = bar + weight.abs()[:, None] * self.error_bar(name, timing)[None, :]
            index = torch.as_tensor(self.measurements.timings[timing].indices, device=self.device)
            result[:, index] = total.to(CDTYPE)
            if with_error:
                bars[:, index] = bar
        return result, bars

    def _sizes(self, tissue, count: int, properties) -> dict[str, torch.Tensor]:
        """Per compartment the volume fraction of every tissue point [-], or its volume
        [m^3] when the sweep gives no fractions (compartments of one kind only)."""
        kinds = [
            k
            for k in ("volume_fraction", "signal_fraction")
            if any(tissue_value(tissue, name, k) is not None for name in self.domains)
        ]
        if len(kinds) > 1:
            raise ValueError("use volume_fraction or signal_fraction in [tissue], not both")
        if not kinds:
            self._check_kinds()
            return {n: self.domains[n].volume.expand(count) for n in self.domains}
        kind = kinds[0]
        given = {n: tissue_value(tissue, n, kind) for n in self.domains}
        missing = [n for n, v in given.items() if v is None]
        if len(missing) > 1:
            raise ValueError(
                f"[tissue] {kind} is missing for compartments {missing}: give it to all, or to "
                "all but one (which gets the rest)"
            )
        as_tensor = lambda v: torch.as_tensor(v, dtype=DTYPE, device=self.device)  # noqa: E731
        fractions = {n: as_tensor(v) for n, v in given.items() if v is not None}
        if missing:
            rest = 1 - sum(fractions.values())
            if bool((rest < -1e-12).any()):
                raise ValueError(f"[tissue] {kind} values add up to more than 1")
            fractions[missing[0]] = rest.clamp(min=0.0)
        if kind == "volume_fraction":
            return fractions
        # signal fraction s_c = f_c rho_c / sum f rho  ->  f_c proportional to s_c / rho_c
        raw = {n: fractions[n] / properties[n][2] for n in self.domains}
        total = sum(raw.values())
        return {n: raw[n] / total for n in self.domains}

    def _check_kinds(self) -> None:
        from mf_dmri.signal import Compartment
        from mf_dmri.signal.compartment import compartment_weights

        compartments = tuple(
            Compartment(d, 1e-9, plausibility=self.plausibility) for d in self.domains.values()
        )
        compartment_weights(compartments, torch.zeros((), dtype=DTYPE))

    def error_bar(self, name: str, timing: int) -> torch.Tensor:
        """Error bar (M_timing,) of compartment ``name``'s attenuation (memoised)."""
        key = (name, timing)
        if key not in self._bars:
            from mf_dmri.signal import Compartment, signal, signal_with_error

            low, high = self.diffusivity_ranges.get(name, (None, None))
            if low is None:
                raise ValueError(f"no diffusivity range for compartment {name!r}")
            acquisition = timing_acquisition(self.measurements, self.measurements.timings[timing])
            bars = []
            for d in sorted({low, high}):
                compartment = Compartment(self.domains[name], d, plausibility=self.plausibility)
                checked = signal_with_error(compartment, self._pieces[timing])
                # the sweep keeps its a-priori cutoff, which the check may have climbed past
                kept = self.attenuation(name, timing, np.array([d]))[0]
                bar = checked.error_bar.to(self.device) + (kept - checked.signal.to(kept)).abs()
                # and the signal of the default pieces of a smooth waveform
                waveform = coarse_waveform_error(
                    lambda step, c=compartment: signal(c, acquisition, time_step=step), acquisition
                )
                bars.append(bar if waveform is None else bar + waveform.to(self.device))
            self._bars[key] = torch.stack(bars).amax(0)
        return self._bars[key]

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
