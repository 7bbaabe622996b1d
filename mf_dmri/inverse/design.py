"""Protocol design: change the timing and amplitude of PGSE shells to lower the
Cramer-Rao bound of a target parameter, within hardware limits.

The design variables of each shell map to feasible protocols by construction (no penalty,
no clipping):

    Delta + delta = 2 delta_min + (T - 2 delta_min) sigmoid(a)   (T: echo-time budget)
    delta         = delta_min + ((Delta + delta) / 2 - delta_min) sigmoid(b)   (delta <= Delta)
    G             = G_max sigmoid(c)

so every iterate satisfies G <= G_max, TE <= TE_max, delta_min <= delta <= Delta.  The
gradient directions and the number of measurements are fixed.  The objective is the mean
over the given parameter values of log CRB(target), differentiated through the Fisher
information (third derivatives of the signal, all by reverse-mode autograd).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from mf_dmri.inverse.fisher import cramer_rao_bound
from mf_dmri.inverse.protocol import HardwareLimits, PGSEProtocol

logger = logging.getLogger(__name__)

_INTERIOR = 1e-6


@dataclass(frozen=True)
class ProtocolDesign:
    """Result of ``optimise_protocol``.

    Args:
        initial: the starting protocol.
        optimised: the best protocol found (never worse than ``initial``).
        target: the parameter whose bound was minimised.
        initial_bounds: Cramer-Rao standard deviation of ``target`` for each parameter
            set, initial protocol [unit of target].
        optimised_bounds: the same for the optimised protocol [unit of target].
        history: objective (mean log CRB variance) at each evaluation [-].
    """

    initial: PGSEProtocol
    optimised: PGSEProtocol
    target: str
    initial_bounds: tuple[float, ...]
    optimised_bounds: tuple[float, ...]
    history: tuple[float, ...]

    @property
    def improvement(self) -> float:
        """Geometric-mean factor by which the CRB standard deviation went down [-]."""
        ratios = [a / b for a, b in zip(self.initial_bounds, self.optimised_bounds)]
        return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def _logit(u: torch.Tensor) -> torch.Tensor:
    u = u.clamp(_INTERIOR, 1 - _INTERIOR)
    return torch.log(u) - torch.log1p(-u)


def _to_variables(protocol: PGSEProtocol, limits: HardwareLimits) -> torch.Tensor:
    """(S, 3) unconstrained (a, b, c); a protocol on a limit starts 1e-6 inside it."""
    delta = protocol.pulse_duration.detach()
    total = (protocol.pulse_separation + protocol.pulse_duration).detach()
    low = 2 * limits.min_pulse_duration
    a = _logit((total - low) / (limits.diffusion_time_budget - low))
    b = _logit((delta - limits.min_pulse_duration) / (total / 2 - limits.min_pulse_duration))
    c = _logit(protocol.gradient_amplitude.detach() / limits.max_gradient)
    return torch.stack([a, b, c], dim=1)


def _to_protocol(
    variables: torch.Tensor, template: PGSEProtocol, limits: HardwareLimits
) -> PGSEProtocol:
    low = 2 * limits.min_pulse_duration
    total = low + (limits.diffusion_time_budget - low) * torch.sigmoid(variables[:, 0])
    half = total / 2
    delta = limits.min_pulse_duration + (half - limits.min_pulse_duration) * torch.sigmoid(
        variables[:, 1]
    )
    amplitude = limits.max_gradient * torch.sigmoid(variables[:, 2])
    return PGSEProtocol(
        delta,
        total - delta,
        amplitude,
        template.directions,
        template.b0_measurements,
        template.gyromagnetic_ratio,
    )


def _bounds(model, value_sets, protocol, sigma, target, names, likelihood, create_graph):
    return [
        cramer_rao_bound(
            model,
            values,
            protocol,
            sigma,
            names=names,
            likelihood=likelihood,
            create_graph=create_graph,
        ).standard_deviation(target)
        for values in value_sets
    ]


def optimise_protocol(
    model: Callable,
    values: Mapping[str, float] | Sequence[Mapping[str, float]],
    protocol: PGSEProtocol,
    sigma: float,
    limits: HardwareLimits,
    *,
    target: str = "radius",
    names: Sequence[str] | None = None,
    likelihood: str = "gaussian",
    iterations: int = 30,
    learning_rate: float = 0.1,
) -> ProtocolDesign:
    """Lower the Cramer-Rao bound of ``target`` by changing delta, Delta and G per shell.

    Args:
        model: ``model(values, protocol) -> signals (M,)`` (e.g. ``CylinderModel``).
        values: the parameter values [SI] the design is for, or several (e.g. a few small
            radii); the objective averages log CRB over them.
        protocol: the starting protocol; it must satisfy ``limits``.
        sigma: noise standard deviation [data units].
        limits: gradient amplitude, echo time and pulse duration limits.
        target: the parameter to estimate best.
        names: the unknown parameters (default: all keys of ``values``); the rest are known.
        likelihood: "gaussian" or "rician".
        iterations: Adam iterations on the design variables.
        learning_rate: Adam step in the unconstrained design variables [-].
    """
    value_sets = [values] if isinstance(values, Mapping) else list(values)
    if not value_sets:
        raise ValueError("values must be a parameter dict or a non-empty list of them")
    if any(target not in v for v in value_sets):
        raise KeyError(f"target {target!r} is not among the parameter values")
    if not isinstance(protocol, PGSEProtocol):
        raise TypeError("protocol must be a PGSEProtocol (shell timings are the design variables)")
    problems = limits.violations(protocol)
    if problems:
        raise ValueError(
            "the starting protocol breaks the hardware limits: "
            + "; ".join(problems)
            + ". Start from a feasible protocol."
        )
    if not (isinstance(iterations, int) and iterations >= 1):
        raise ValueError("iterations must be a positive integer")

    def objective(variables: torch.Tensor) -> torch.Tensor:
        candidate = _to_protocol(variables, protocol, limits)
        stds = _bounds(model, value_sets, candidate, sigma, target, names, likelihood, True)
        return torch.stack([2 * torch.log(s) for s in stds]).mean()

    variables = _to_variables(protocol, limits).requires_grad_(True)
    optimiser = torch.optim.Adam([variables], lr=learning_rate)
    best_value, best = math.inf, variables.detach().clone()
    history = []
    for step in range(iterations):
        optimiser.zero_grad()
        loss = objective(variables)
        loss.backward()
        history.append(float(loss.detach()))
        logger.info("design step %d: mean log CRB variance %.4f", step, history[-1])
        if history[-1] < best_value:
            best_value, best = history[-1], variables.detach().clone()
        optimiser.step()
    final = float(objective(variables.detach()).detach())
    history.append(final)
    if final < best_value:
        best = variables.detach().clone()
    optimised = _to_protocol(best, protocol, limits)
    optimised = PGSEProtocol(
        optimised.pulse_duration.detach(),
        optimised.pulse_separation.detach(),
        optimised.gradient_amplitude.detach(),
        protocol.directions,
        protocol.b0_measurements,
        protocol.gyromagnetic_ratio,
    )
    initial_bounds = _bounds(model, value_sets, protocol, sigma, target, names, likelihood, False)
    final_bounds = _bounds(model, value_sets, optimised, sigma, target, names, likelihood, False)
    return ProtocolDesign(
        initial=protocol,
        optimised=optimised,
        target=target,
        initial_bounds=tuple(float(b) for b in initial_bounds),
        optimised_bounds=tuple(float(b) for b in final_bounds),
        history=tuple(history),
    )
