"""Voxel-wise least-squares fits, batched over voxels in torch.

Every voxel is an independent nonlinear least-squares problem; all voxels of a chunk take
Levenberg-Marquardt steps together (Marquardt 1963, SIAM J. Appl. Math. 11, 431), each with
its own damping, in the unconstrained variables of :mod:`mf_dmri.inverse.parameters`.  The
Jacobian comes from forward-mode automatic differentiation (one pass per free parameter
for all voxels at once).  Several starting radii are tried and the best fit per voxel is
kept.

Uncertainties: the covariance sigma^2 (J^T J)^-1 of the Gaussian likelihood at the
estimate (the Laplace approximation; for Rician magnitudes it holds at SNR >~ 5), with
sigma the given noise level or sqrt(RSS / (M - F)).  The same J gives the Cramer-Rao bound
at any parameter values (:func:`cramer_rao_voxels`).  A fit converges when a step changes
no unconstrained variable by more than ``step_tolerance`` or the residual is at round-off;
on noise-free data that happens at the exact parameters, with tiny (not NaN) standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE
from mf_dmri.inverse.parameters import Parameter
from mf_dmri.inverse.voxel_model import VoxelModel

#: starting radii [m] tried for every voxel (the best fit is kept)
START_RADII = (1.5e-6, 4e-6, 9e-6)
#: Levenberg-Marquardt iterations from each start before the best start is continued
PROBE_ITERATIONS = 6
_CONDITION_LIMIT = 1e12


@dataclass(frozen=True)
class VoxelFit:
    """Estimates of V voxels.

    Args:
        estimates: every parameter (fixed ones too), (V,) each [SI].
        standard_errors: the free parameters, (V,) each [SI]; NaN where J^T J is singular.
        sigma: noise level used per voxel (V,) [data units].
        converged: (V,) bool.
        at_bound: free parameters within 1e-4 of the bound interval of a bound, (V, F) bool.
        free_names: the free parameters, in the column order of ``at_bound``.
    """

    estimates: dict[str, torch.Tensor]
    standard_errors: dict[str, torch.Tensor]
    sigma: torch.Tensor
    converged: torch.Tensor
    at_bound: torch.Tensor
    free_names: tuple[str, ...]


class _Problem:
    """Residuals of a chunk of voxels as a function of the unconstrained variables."""

    def __init__(self, model: VoxelModel, data: torch.Tensor, axes, fixed: dict) -> None:
        self.model, self.data, self.axes = model, data, axes
        self.free = [p for p in model.parameters if not p.fixed]
        self.fixed = fixed

    def values(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        values = {name: v.expand(z.shape[0]) for name, v in self.fixed.items()}
        for column, parameter in enumerate(self.free):
            values[parameter.name] = parameter.to_physical(z[:, column])
        return values

    def residuals(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.signals(self.values(z), self.axes) - self.data

    def subset(self, rows: torch.Tensor) -> _Problem:
        """The problem of the voxels ``rows`` (a boolean mask)."""
        axes = None if self.axes is None else self.axes[rows]
        return _Problem(self.model, self.data[rows], axes, self.fixed)

    def jacobian(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(residuals (V, M), Jacobian (V, M, F)) by forward-mode differentiation of the
        model with its tables expanded about z (exact value and first derivatives)."""
        frozen = self.model.frozen()

        def residuals(x: torch.Tensor) -> torch.Tensor:
            return frozen.signals(self.values(x), self.axes) - self.data

        with torch.no_grad():
            residuals(z)  # fixes the expansion points
        return forward_jacobian(residuals, z)


def forward_jacobian(function, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(function(x) (V, M), d function / d x (V, M, F)) for x (V, F) whose rows act on
    their own rows of the output only: one forward-mode pass per column of x, batched."""
    count = x.shape[1]
    tangents = torch.eye(count, dtype=x.dtype)[:, None, :].expand(count, *x.shape)

    def column(tangent):
        return torch.func.jvp(function, (x,), (tangent,))

    values, derivatives = torch.func.vmap(column, out_dims=(None, 0))(tangents)
    return values.detach(), derivatives.permute(1, 2, 0).detach()


def _solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    jitter = 1e-12 * matrix.diagonal(dim1=1, dim2=2).abs().amax(1).clamp(min=1e-300)
    eye = torch.eye(matrix.shape[1], dtype=DTYPE)
    return torch.linalg.solve(matrix + jitter[:, None, None] * eye, rhs[..., None])[..., 0]


def _levenberg_marquardt(problem: _Problem, z, max_iterations, step_tolerance):
    """Damped Gauss-Newton steps for every voxel; converged voxels drop out of the batch.

    A voxel has converged when an accepted step moves no unconstrained variable by more
    than ``step_tolerance`` or lowers the cost by less than 1e-12 of it, or when its cost
    is at round-off (an exact fit)."""
    with torch.no_grad():
        cost = (problem.residuals(z) ** 2).sum(1)
    damping = torch.full_like(cost, 1e-3)
    converged = torch.zeros_like(cost, dtype=torch.bool)
    scale = problem.data.abs().amax(1).clamp(min=1e-300) ** 2
    converged |= cost <= 1e-26 * problem.data.shape[1] * scale
    for _ in range(max_iterations):
        active = ~converged
        if not bool(active.any()):
            break
        part = problem.subset(active)
        residuals, jacobian = part.jacobian(z[active])
        normal = jacobian.transpose(1, 2) @ jacobian
        gradient = (jacobian.transpose(1, 2) @ residuals[..., None])[..., 0]
        diagonal = torch.diag_embed(normal.diagonal(dim1=1, dim2=2))
        step = -_solve(normal + damping[active, None, None] * diagonal, gradient)
        trial = z[active] + step
        with torch.no_grad():
            trial_cost = (part.residuals(trial) ** 2).sum(1)
        old = cost[active]
        better = (trial_cost < old) & torch.isfinite(trial_cost)
        small = step.abs().amax(1) < step_tolerance
        flat = better & (old - trial_cost <= 1e-12 * old)
        done = (better & small) | flat | (~better & small)
        done |= better & (trial_cost <= 1e-26 * problem.data.shape[1] * scale[active])
        z[active] = torch.where(better[:, None], trial, z[active])
        cost[active] = torch.where(better, trial_cost, old)
        damping[active] = torch.where(better, damping[active] / 3, damping[active] * 4).clamp(
            1e-12, 1e12
        )
        converged[active] = done
    return z, cost, converged


def _physical_jacobian(problem: _Problem, z: torch.Tensor) -> torch.Tensor:
    """d(signals)/d(physical free parameters) (V, M, F)."""
    _, jacobian = problem.jacobian(z)
    slopes = []
    for column, parameter in enumerate(problem.free):
        variable = z[:, column].clone().requires_grad_(True)
        (slope,) = torch.autograd.grad(parameter.to_physical(variable).sum(), variable)
        slopes.append(slope)
    return jacobian / torch.stack(slopes, dim=1)[:, None, :]


def covariance_from_jacobian(jacobian: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """sigma^2 (J^T J)^-1 (V, F, F), NaN where J^T J is numerically singular."""
    normal = jacobian.transpose(1, 2) @ jacobian
    scale = normal.diagonal(dim1=1, dim2=2).clamp(min=1e-300).sqrt()
    balanced = normal / (scale[:, :, None] * scale[:, None, :])
    finite = torch.isfinite(balanced).all(dim=2).all(dim=1)
    eye = torch.eye(balanced.shape[1], dtype=balanced.dtype)
    balanced = torch.where(finite[:, None, None], balanced, eye)
    eigenvalues = torch.linalg.eigvalsh(balanced)
    singular = ~finite | (eigenvalues[:, 0] <= eigenvalues[:, -1] / _CONDITION_LIMIT)
    inverse = torch.linalg.pinv(balanced, hermitian=True) / (scale[:, :, None] * scale[:, None, :])
    covariance = sigma[:, None, None] ** 2 * inverse
    return torch.where(singular[:, None, None], torch.full_like(covariance, math.nan), covariance)


def _start(problem: _Problem, data: torch.Tensor, radius: float) -> torch.Tensor:
    columns = []
    for parameter in problem.free:
        value = parameter.initial
        if parameter.name == "radius":
            value = min(max(radius, parameter.lower * 1.01), parameter.upper * 0.99)
        columns.append(torch.full((data.shape[0],), parameter.to_unconstrained(value), dtype=DTYPE))
    z = torch.stack(columns, dim=1)
    if "s0" in [p.name for p in problem.free]:
        column = [p.name for p in problem.free].index("s0")
        s0 = problem.free[column]
        guess = data.amax(1).clamp(min=s0.lower + 1e-12 * max(s0.scale, 1.0))
        z[:, column] = torch.log((guess - s0.lower) / s0.scale) if not s0.bounded else z[:, column]
    return z


def fit_voxels(
    model: VoxelModel,
    data: torch.Tensor,
    axes: torch.Tensor | None = None,
    *,
    sigma: float | None = None,
    start_radii: tuple[float, ...] = START_RADII,
    max_iterations: int = 60,
    step_tolerance: float = 1e-7,
    chunk: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> VoxelFit:
    """Fit ``model`` to every voxel.

    Args:
        model: the batched tissue model (with its parameters and bounds).
        data: (V, M) signals [data units], in the protocol's measurement order.
        axes: (V, 3) unit fibre axes [-] for cylinders (e.g. from a tensor fit); None for
            spheres.
        sigma: noise standard deviation [data units]; None to estimate it per voxel.
        start_radii: starting radii [m]; the fit with the least residual is kept.
        max_iterations: Levenberg-Marquardt iterations per start.
        step_tolerance: convergence threshold on the unconstrained step [-].
        chunk: voxels per batch (memory: about chunk x M x F x 8 bytes x 4).
        progress: called with (voxels done, voxels total) after every chunk.
    """
    data = torch.as_tensor(data, dtype=DTYPE)
    if data.ndim != 2 or data.shape[1] != model.num_measurements:
        raise ValueError(
            f"data must be (voxels, {model.num_measurements}), got {tuple(data.shape)}: the "
            "image and the gradient table must list the same measurements"
        )
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data contain NaN or infinite values; mask those voxels out")
    fixed = {p.name: torch.tensor([p.initial], dtype=DTYPE) for p in model.parameters if p.fixed}
    pieces = []
    for start in range(0, data.shape[0], chunk):
        block = slice(start, min(start + chunk, data.shape[0]))
        block_axes = None if axes is None else torch.as_tensor(axes[block], dtype=DTYPE)
        pieces.append(
            _fit_chunk(
                model,
                data[block],
                block_axes,
                fixed,
                sigma,
                start_radii,
                max_iterations,
                step_tolerance,
            )
        )
        if progress is not None:
            progress(block.stop, data.shape[0])
    return _concatenate(pieces)


def _fit_chunk(model, data, axes, fixed, sigma, start_radii, max_iterations, step_tolerance):
    problem = _Problem(model, data, axes, fixed)
    best = None
    for radius in start_radii:  # a few steps from each start; the best one goes on
        z, cost, _ = _levenberg_marquardt(
            problem, _start(problem, data, radius), PROBE_ITERATIONS, step_tolerance
        )
        if best is None or len(start_radii) == 1:
            best = (z, cost)
            continue
        better = cost < best[1]
        best = (torch.where(better[:, None], z, best[0]), torch.where(better, cost, best[1]))
    z, cost, converged = _levenberg_marquardt(problem, best[0], max_iterations, step_tolerance)
    free = len(problem.free)
    dof = max(data.shape[1] - free, 1)
    noise = torch.full_like(cost, float(sigma)) if sigma is not None else torch.sqrt(cost / dof)
    jacobian = _physical_jacobian(problem, z)
    covariance = covariance_from_jacobian(jacobian, noise)
    values = {k: v.detach() for k, v in problem.values(z).items()}
    errors = {p.name: covariance[:, i, i].clamp(min=0).sqrt() for i, p in enumerate(problem.free)}
    bounds = torch.stack([_near_bound(p, values[p.name]) for p in problem.free], dim=1)
    return VoxelFit(values, errors, noise, converged, bounds, tuple(p.name for p in problem.free))


def _near_bound(parameter: Parameter, value: torch.Tensor) -> torch.Tensor:
    width = parameter.upper - parameter.lower if parameter.bounded else parameter.scale
    near = torch.zeros_like(value, dtype=torch.bool)
    if math.isfinite(parameter.lower):
        near |= value - parameter.lower <= 1e-4 * width
    if math.isfinite(parameter.upper):
        near |= parameter.upper - value <= 1e-4 * width
    return near


def _concatenate(pieces: list[VoxelFit]) -> VoxelFit:
    first = pieces[0]
    return VoxelFit(
        {k: torch.cat([p.estimates[k] for p in pieces]) for k in first.estimates},
        {k: torch.cat([p.standard_errors[k] for p in pieces]) for k in first.standard_errors},
        torch.cat([p.sigma for p in pieces]),
        torch.cat([p.converged for p in pieces]),
        torch.cat([p.at_bound for p in pieces]),
        first.free_names,
    )


def cramer_rao_voxels(
    model: VoxelModel,
    values: dict[str, torch.Tensor],
    axes: torch.Tensor | None,
    sigma: float,
) -> dict[str, torch.Tensor]:
    """Cramer-Rao bound on the standard deviation of every free parameter (V,) [SI] at the
    parameter ``values`` (each (V,)), for Gaussian noise ``sigma`` [data units]."""
    free = [p for p in model.parameters if not p.fixed]
    count = next(iter(values.values())).shape[0]
    frozen = model.frozen()

    def signals(x: torch.Tensor) -> torch.Tensor:
        current = {k: torch.as_tensor(v, dtype=DTYPE).expand(count) for k, v in values.items()}
        for column, parameter in enumerate(free):
            current[parameter.name] = x[:, column]
        return frozen.signals(current, axes)

    x = torch.stack([torch.as_tensor(values[p.name], dtype=DTYPE) for p in free], dim=1)
    with torch.no_grad():
        signals(x)  # fixes the expansion points of the frozen tables
    _, jacobian = forward_jacobian(signals, x)
    covariance = covariance_from_jacobian(jacobian, torch.full((count,), sigma))
    return {p.name: covariance[:, i, i].sqrt() for i, p in enumerate(free)}
