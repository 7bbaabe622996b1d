"""Maximum-likelihood fitting of any differentiable forward model.

    result = fit(model.bind(protocol), data, model.parameters(), likelihood="rician")

The forward model takes a dict of named physical parameters (0-d tensors, SI units) and
returns the real signal (M,) in data units.  The optimiser works in the well-scaled
unconstrained variables of ``mf_dmri.inverse.parameters``; uncertainties come from the
Laplace approximation (``mf_dmri.inverse.uncertainty``) and optionally a parametric
bootstrap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence

import torch

from mf_dmri._checks import DTYPE
from mf_dmri.inverse.fisher import information_from_jacobian
from mf_dmri.inverse.jacobian import ForwardModel, evaluate, jacobian
from mf_dmri.inverse.likelihood import (
    check_data,
    check_likelihood,
    negative_log_likelihood,
    sample_noise,
)
from mf_dmri.inverse.optimise import LocalResult, OptimiserSettings, minimise, start_points
from mf_dmri.inverse.parameters import Parameter, ParameterSpace, as_space
from mf_dmri.inverse.result import Bootstrap, Convergence, FitResult
from mf_dmri.inverse.uncertainty import (
    covariance_from_curvature,
    newton_decrement,
    physical_scales,
    scaled_derivatives,
)

logger = logging.getLogger(__name__)

COVARIANCES = ("hessian", "fisher")
_BOUND_TOLERANCE = 1e-4


def _sigma_parameter(
    sigma, forward: ForwardModel, data: torch.Tensor, space: ParameterSpace
) -> Parameter | None:
    if "sigma" in space.names:
        raise ValueError("'sigma' is reserved for the noise level: rename that model parameter")
    if isinstance(sigma, Parameter):
        if sigma.name != "sigma":
            raise ValueError("a sigma Parameter must be named 'sigma'")
        return sigma
    if sigma is not None:
        if (
            isinstance(sigma, bool)
            or not isinstance(sigma, (int, float))
            or not sigma > 0
            or math.isinf(sigma)
        ):
            raise ValueError(
                f"sigma must be a positive finite number [data units] or None, got {sigma!r}"
            )
        return None
    with torch.no_grad():
        initial = evaluate(forward, space.physical(space.unconstrained()))
    guess = float(torch.sqrt(((data - initial) ** 2).mean()))
    guess = max(guess, 1e-3 * float(data.abs().max()), 1e-300)
    return Parameter("sigma", guess, 0.0, math.inf, unit="data")


class _Problem:
    """The negative log-likelihood as a function of unconstrained or physical values."""

    def __init__(self, forward, data, space, likelihood, sigma, estimated):
        self.forward, self.data, self.space = forward, data, space
        self.likelihood, self.sigma, self.estimated = likelihood, sigma, estimated

    def split(self, values: Mapping[str, torch.Tensor]) -> tuple[dict, torch.Tensor]:
        values = dict(values)
        sigma = values.pop("sigma") if self.estimated else torch.tensor(self.sigma, dtype=DTYPE)
        return values, sigma

    def loss_of_values(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        model_values, sigma = self.split(values)
        predicted = evaluate(self.forward, model_values)
        return negative_log_likelihood(self.likelihood, self.data, predicted, sigma)

    def loss_of_z(self, z: torch.Tensor) -> torch.Tensor:
        return self.loss_of_values(self.space.physical(z))


def fit(
    forward: ForwardModel,
    data: torch.Tensor | Sequence[float],
    parameters: ParameterSpace | Sequence[Parameter],
    *,
    likelihood: str = "gaussian",
    sigma: float | Parameter | None = None,
    starts: int = 1,
    seed: int = 0,
    optimizer: str = "lbfgs",
    max_iterations: int = 200,
    learning_rate: float = 0.05,
    covariance: str = "hessian",
    tolerance: float = 1e-6,
    bootstrap: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Maximum-likelihood estimate of the parameters of ``forward`` from ``data``.

    Args:
        forward: callable dict of physical parameters [SI] -> real signals (M,) [data units].
        data: measured signals (M,) [data units]; magnitudes (>= 0) for Rician noise.
        parameters: the model's parameters with bounds (e.g. ``model.parameters()``).
        likelihood: "gaussian" (real data) or "rician" (magnitude data).
        sigma: noise standard deviation per channel [data units]; None to estimate it (it
            becomes the free parameter "sigma"), or a ``Parameter`` named "sigma".
        starts: number of starts: the initial values, then random points within bounds.
        seed: seed of the random starts and of the bootstrap noise.
        optimizer: "lbfgs" (strong Wolfe line search) or "adam".
        max_iterations: iterations per start.
        learning_rate: Adam step in the unconstrained variables [-].
        covariance: "hessian" (observed information, autograd) or "fisher" (expected
            information at the estimate; Gauss-Newton for Gaussian noise).
        tolerance: convergence threshold on the Newton decrement [log-likelihood units].
        bootstrap: number of parametric-bootstrap refits (0 for none).
        progress: called with (optimisations done, optimisations in total) after every
            start and bootstrap refit.

    Returns:
        a ``FitResult`` (estimates, Laplace covariance, convergence report, bootstrap).
    """
    check_likelihood(likelihood)
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    if not (isinstance(bootstrap, int) and bootstrap >= 0):
        raise ValueError("bootstrap must be a non-negative integer")
    if not tolerance > 0:
        raise ValueError("tolerance must be positive")
    data = check_data(data, likelihood)
    space = as_space(parameters)
    settings = OptimiserSettings(optimizer, max_iterations, learning_rate)
    sigma_param = _sigma_parameter(sigma, forward, data, space)
    estimated = sigma_param is not None
    if estimated:
        space = ParameterSpace(space.parameters + (sigma_param,))
    problem = _Problem(
        forward, data, space, likelihood, None if estimated else float(sigma), estimated
    )
    with torch.no_grad():
        predicted = evaluate(forward, problem.split(space.physical(space.unconstrained()))[0])
    if predicted.numel() != data.numel():
        raise ValueError(
            f"the model gives {predicted.numel()} signals but the data have {data.numel()}: "
            "the protocol and the data must list the same measurements in the same order"
        )
    generator = torch.Generator().manual_seed(seed)
    counter = _Counter(progress, starts + bootstrap)
    runs = _multistart(problem, start_points(space, starts, generator), settings, counter)
    best = runs[0]
    values = {k: v.detach() for k, v in space.physical(best.z).items()}
    return _finish(
        problem, values, best, runs, settings, covariance, tolerance, bootstrap, generator, counter
    )


class _Counter:
    """Counts finished optimisations and reports them to ``progress(done, total)``."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _multistart(problem: _Problem, starts: torch.Tensor, settings, counter) -> list[LocalResult]:
    runs = []
    for index, start in enumerate(starts):
        try:
            runs.append(minimise(problem.loss_of_z, start, settings))
        except FloatingPointError as exc:
            logger.warning("start %d failed: %s", index, exc)
        counter.step()
    runs = [r for r in runs if math.isfinite(r.loss)]
    if not runs:
        raise FloatingPointError(
            "every start failed (the model returned NaN/inf or the loss diverged): check the "
            "parameter bounds and that the data match the protocol"
        )
    return sorted(runs, key=lambda r: r.loss)


def _free_vector(space: ParameterSpace, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.stack([values[name] for name in space.free_names]).to(DTYPE)


def _curvature(problem, values, estimates, scales, covariance):
    """(gradient, curvature, note): the Hessian, or the Fisher information when asked for
    or when the Hessian fails its check (the model is not twice differentiable)."""

    def objective(free: torch.Tensor) -> torch.Tensor:
        return problem.loss_of_values(problem.space.from_values(values, free))

    gradient, hessian, verified = scaled_derivatives(objective, estimates, scales)
    if covariance == "hessian" and verified:
        return gradient, hessian, ""
    note = "" if verified else "; Hessian unavailable (model not twice differentiable): Fisher used"
    model_values, sigma = problem.split(values)
    names = [n for n in problem.space.free_names if n != "sigma"]
    model_scales = [float(scales[problem.space.free_names.index(n)]) for n in names]
    predicted, jac = jacobian(problem.forward, model_values, names, scales=model_scales)
    info = information_from_jacobian(
        jac, predicted, sigma, problem.likelihood, include_sigma=problem.estimated
    )
    if problem.estimated:
        factor = torch.ones(info.shape[0], dtype=DTYPE)
        factor[-1] = scales[-1]
        info = info * factor[:, None] * factor[None, :]
    return gradient, info, note


def _at_bound(space: ParameterSpace, values: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    flagged = []
    for p in space.free:
        x = float(values[p.name])
        width = (p.upper - p.lower) if p.bounded else p.scale
        near_lower = math.isfinite(p.lower) and (x - p.lower) <= _BOUND_TOLERANCE * width
        near_upper = math.isfinite(p.upper) and (p.upper - x) <= _BOUND_TOLERANCE * width
        if near_lower or near_upper:
            flagged.append(p.name)
    return tuple(flagged)


def _finish(
    problem, values, best, runs, settings, covariance, tolerance, bootstrap, generator, counter
):
    space = problem.space
    estimates = _free_vector(space, values)
    fallback = torch.tensor([p.scale for p in space.free], dtype=DTYPE)
    scales = physical_scales(estimates, fallback)
    gradient, curvature, note = _curvature(problem, values, estimates, scales, covariance)
    cov, condition, positive = covariance_from_curvature(curvature, scales)
    decrement = newton_decrement(gradient, curvature, positive)
    z = best.z.clone().requires_grad_(True)
    (z_gradient,) = torch.autograd.grad(problem.loss_of_z(z), z)
    at_bound = _at_bound(space, values)
    converged = positive and decrement <= tolerance
    message = _message(converged, positive, decrement, at_bound, best, settings) + note
    report = Convergence(
        converged=converged,
        iterations=best.iterations,
        evaluations=best.evaluations,
        final_loss=best.loss,
        gradient_norm=float(z_gradient.abs().max()),
        newton_decrement=decrement,
        hessian_condition=condition,
        optimizer=settings.optimizer,
        start_losses=tuple(r.loss for r in runs),
        message=message,
    )
    model_values, sigma = problem.split(values)
    with torch.no_grad():
        predicted = evaluate(problem.forward, model_values).detach()
    boot = (
        _bootstrap(
            problem, best.z, predicted, float(sigma), bootstrap, settings, generator, counter
        )
        if bootstrap
        else None
    )
    return FitResult(
        estimates={k: float(v) for k, v in values.items()},
        free_names=space.free_names,
        covariance=cov,
        sigma=float(sigma),
        sigma_estimated=problem.estimated,
        likelihood=problem.likelihood,
        convergence=report,
        at_bound=at_bound,
        predicted=predicted,
        bootstrap=boot,
    )


def _message(converged, positive, decrement, at_bound, best, settings) -> str:
    if converged:
        return f"converged: Newton decrement {decrement:.2e} after {best.iterations} iterations"
    reasons = []
    if not positive:
        reasons.append("the Hessian is not positive definite (parameters not identifiable)")
    if at_bound:
        reasons.append(f"estimates at a bound: {', '.join(at_bound)}")
    if best.iterations >= settings.max_iterations:
        reasons.append("iteration limit reached")
    if positive and not at_bound:
        reasons.append(f"Newton decrement {decrement:.2e} above tolerance")
    return "not converged: " + "; ".join(reasons)


def _bootstrap(problem, start, predicted, sigma, count, settings, generator, counter) -> Bootstrap:
    """Refit ``count`` data sets simulated from the estimate, each started at the estimate
    (``start``: its unconstrained vector)."""
    space = problem.space
    samples, failures = [], 0
    for _ in range(count):
        data = sample_noise(problem.likelihood, predicted, sigma, generator)
        replicate = _Problem(
            problem.forward, data, space, problem.likelihood, problem.sigma, problem.estimated
        )
        try:
            result = minimise(replicate.loss_of_z, start, settings)
        except FloatingPointError:
            failures += 1
            continue
        finally:
            counter.step()
        refit = space.physical(result.z)
        samples.append(_free_vector(space, refit).detach())
    if not samples:
        raise FloatingPointError("every bootstrap refit failed; check the model and bounds")
    return Bootstrap(torch.stack(samples), failures)
