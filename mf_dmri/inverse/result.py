"""Frozen results of a fit: estimates, convergence report and uncertainties."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

#: Two-sided standard normal quantiles for the usual interval levels.
_Z = {0.68: 0.994457883, 0.9: 1.644853627, 0.95: 1.959963985, 0.99: 2.575829304}


def normal_quantile(level: float) -> float:
    """z such that P(|N(0,1)| <= z) = level, for 0 < level < 1."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if level in _Z:
        return _Z[level]
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


@dataclass(frozen=True)
class Convergence:
    """How the optimisation ended.

    Args:
        converged: the Hessian at the optimum is positive definite and the Newton
            decrement g^T H^-1 g / 2 (the log-likelihood still to gain, to second order)
            is below the tolerance.
        iterations: optimiser iterations of the best start.
        evaluations: objective evaluations of the best start.
        final_loss: negative log-likelihood at the estimate [-].
        gradient_norm: largest |d loss / d z| over the unconstrained variables [-].
        newton_decrement: g^T H^-1 g / 2 at the estimate [-] (inf if H is not positive
            definite).
        hessian_condition: condition number of the Hessian in scaled coordinates [-].
        optimizer: "lbfgs" or "adam".
        start_losses: final loss of every start, the best first.
        message: a short human-readable summary.
    """

    converged: bool
    iterations: int
    evaluations: int
    final_loss: float
    gradient_norm: float
    newton_decrement: float
    hessian_condition: float
    optimizer: str
    start_losses: tuple[float, ...]
    message: str


@dataclass(frozen=True)
class Bootstrap:
    """Parametric bootstrap: refits of data simulated from the estimate.

    Args:
        samples: (B, F) refitted free parameters [SI units], F as in ``FitResult.free_names``.
        failures: replicates whose refit failed (excluded from ``samples``).
    """

    samples: torch.Tensor
    failures: int

    def standard_error(self, index: int) -> float:
        return float(self.samples[:, index].std(unbiased=True))

    def percentile_interval(self, index: int, level: float = 0.95) -> tuple[float, float]:
        column = self.samples[:, index]
        tail = (1 - level) / 2
        return float(column.quantile(tail)), float(column.quantile(1 - tail))


@dataclass(frozen=True)
class FitResult:
    """Estimates with uncertainties.

    Args:
        estimates: every parameter (fixed ones included, and ``sigma``) [SI units].
        free_names: the fitted parameters, in the order of ``covariance``.
        covariance: (F, F) Laplace covariance of the free parameters [SI units squared];
            NaN where the Hessian is not positive definite (the data do not determine
            the parameters).
        sigma: the noise standard deviation used (given, or the estimate) [data units].
        sigma_estimated: whether sigma was fitted (then it is one of ``free_names``).
        likelihood: "gaussian" or "rician".
        convergence: the optimisation report.
        at_bound: free parameters whose estimate lies within 1e-4 (relative to the bound
            interval) of a bound; their Laplace intervals are not meaningful.
        predicted: (M,) model signal at the estimate [data units].
        bootstrap: parametric bootstrap refits, or None.
    """

    estimates: MappingProxyType
    free_names: tuple[str, ...]
    covariance: torch.Tensor
    sigma: float
    sigma_estimated: bool
    likelihood: str
    convergence: Convergence
    at_bound: tuple[str, ...]
    predicted: torch.Tensor
    bootstrap: Bootstrap | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "estimates", MappingProxyType(dict(self.estimates)))
        f = len(self.free_names)
        if tuple(self.covariance.shape) != (f, f):
            raise ValueError(f"covariance must be ({f}, {f}), got {tuple(self.covariance.shape)}")
        missing = [n for n in self.free_names if n not in self.estimates]
        if missing:
            raise ValueError(f"free parameters without estimate: {missing}")

    def _index(self, name: str) -> int:
        if name not in self.free_names:
            raise KeyError(f"{name!r} was not fitted; fitted parameters: {list(self.free_names)}")
        return self.free_names.index(name)

    def standard_error(self, name: str) -> float:
        """Laplace standard error of a fitted parameter [its SI unit]."""
        i = self._index(name)
        variance = float(self.covariance[i, i])
        return math.sqrt(variance) if variance >= 0 else math.nan

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Laplace (Wald) interval estimate +- z * standard error [its SI unit]."""
        half = normal_quantile(level) * self.standard_error(name)
        value = self.estimates[name]
        return value - half, value + half

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """JSON-ready summary: per parameter estimate, standard error and interval."""
        rows = {}
        for name, value in self.estimates.items():
            row: dict[str, Any] = {"estimate": value, "fitted": name in self.free_names}
            if name in self.free_names:
                low, high = self.interval(name, level)
                row.update(standard_error=self.standard_error(name), lower=low, upper=high)
                if self.bootstrap is not None:
                    i = self._index(name)
                    row["bootstrap_standard_error"] = self.bootstrap.standard_error(i)
                row["at_bound"] = name in self.at_bound
            rows[name] = row
        c = self.convergence
        return {
            "parameters": rows,
            "interval_level": level,
            "likelihood": self.likelihood,
            "sigma": self.sigma,
            "sigma_estimated": self.sigma_estimated,
            "convergence": {
                "converged": c.converged,
                "iterations": c.iterations,
                "evaluations": c.evaluations,
                "final_loss": c.final_loss,
                "gradient_norm": c.gradient_norm,
                "newton_decrement": c.newton_decrement,
                "hessian_condition": c.hessian_condition,
                "optimizer": c.optimizer,
                "start_losses": list(c.start_losses),
                "message": c.message,
            },
        }
