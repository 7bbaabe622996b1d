"""Minimise a scalar objective of the unconstrained vector z: torch L-BFGS with a strong
Wolfe line search, or Adam; and draw multi-start points."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE
from mf_dmri.inverse.parameters import ParameterSpace

logger = logging.getLogger(__name__)

OPTIMIZERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class OptimiserSettings:
    """Settings of one local optimisation.

    Args:
        optimizer: "lbfgs" (default) or "adam".
        max_iterations: iteration limit per start.
        learning_rate: Adam step size in the unconstrained variables [-] (L-BFGS uses its
            line search).
        loss_tolerance: stop when the loss changes by less than this between iterations
            [-] (log-likelihood units).
    """

    optimizer: str = "lbfgs"
    max_iterations: int = 200
    learning_rate: float = 0.05
    loss_tolerance: float = 1e-10

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (isinstance(self.max_iterations, int) and self.max_iterations >= 1):
            raise ValueError("max_iterations must be a positive integer")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be positive")
        if not self.loss_tolerance > 0:
            raise ValueError("loss_tolerance must be positive")


@dataclass(frozen=True)
class LocalResult:
    z: torch.Tensor
    loss: float
    iterations: int
    evaluations: int


Objective = Callable[[torch.Tensor], torch.Tensor]


def minimise(objective: Objective, start: torch.Tensor, settings: OptimiserSettings) -> LocalResult:
    """Minimise ``objective`` from ``start`` (F,) with the chosen optimiser."""
    if settings.optimizer == "lbfgs":
        return _lbfgs(objective, start, settings)
    return _adam(objective, start, settings)


def _lbfgs(objective: Objective, start: torch.Tensor, settings: OptimiserSettings) -> LocalResult:
    z = start.detach().clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS(
        [z],
        lr=1.0,
        max_iter=settings.max_iterations,
        max_eval=int(settings.max_iterations * 2.5),
        tolerance_grad=1e-12,
        tolerance_change=settings.loss_tolerance,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    count = {"evaluations": 0}

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = objective(z)
        loss.backward()
        count["evaluations"] += 1
        return loss

    optimiser.step(closure)
    state = optimiser.state[z]
    with torch.no_grad():
        loss = float(objective(z))
    return LocalResult(z.detach(), loss, int(state.get("n_iter", 0)), count["evaluations"])


def _adam(objective: Objective, start: torch.Tensor, settings: OptimiserSettings) -> LocalResult:
    z = start.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=settings.learning_rate)
    best_z, best_loss, previous, quiet = z.detach().clone(), math.inf, math.inf, 0
    iterations = 0
    for iterations in range(1, settings.max_iterations + 1):  # noqa: B007
        optimiser.zero_grad()
        loss = objective(z)
        loss.backward()
        value = float(loss.detach())
        if value < best_loss:
            best_z, best_loss = z.detach().clone(), value
        quiet = quiet + 1 if abs(previous - value) < settings.loss_tolerance else 0
        if quiet >= 10:
            break
        previous = value
        optimiser.step()
    return LocalResult(best_z, best_loss, iterations, iterations)


def start_points(space: ParameterSpace, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, F) unconstrained starts: the initial values first, then random points
    (uniform inside two-sided bounds, initial z + N(0, 1) otherwise)."""
    if not (isinstance(count, int) and count >= 1):
        raise ValueError("starts must be a positive integer")
    first = space.unconstrained()
    rows = [first]
    for _ in range(count - 1):
        row = first.clone()
        for i, p in enumerate(space.free):
            u = float(torch.rand((), dtype=DTYPE, generator=generator))
            if p.bounded:
                u = min(max(u, 1e-3), 1 - 1e-3)
                row[i] = math.log(u) - math.log1p(-u)
            else:
                row[i] = first[i] + float(torch.randn((), dtype=DTYPE, generator=generator))
        rows.append(row)
    return torch.stack(rows)
