"""Laplace approximation at the optimum, and the parametric bootstrap.

Laplace: the negative log-likelihood near its minimum is approximately quadratic, so the
estimates are approximately Gaussian with covariance H^-1 (H the Hessian of the negative
log-likelihood in the physical parameters; Laplace 1774, MacKay 2003 ch. 27).  H is
computed by autograd in scaled coordinates x = x_hat + s * xi (s = |x_hat|), where it is
well conditioned, and transformed back: Cov(x) = S H_xi^-1 S.  Alternatively the expected
(Fisher) information at the estimate replaces H (Gauss-Newton for Gaussian noise).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mf_dmri._checks import DTYPE


def physical_scales(estimates: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """|estimate|, or the parameter's declared scale where the estimate is 0."""
    magnitude = estimates.abs()
    return torch.where(magnitude > 0, magnitude, fallback)


#: Step (in scaled coordinates) and tolerance of the Hessian-vector product check.
_CHECK_STEP, _CHECK_RTOL = 1e-5, 1e-3


def scaled_derivatives(
    objective: Callable[[torch.Tensor], torch.Tensor], estimates: torch.Tensor, scales: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(gradient (F,), Hessian (F, F), Hessian verified) of ``objective`` (a function of the
    free physical values) with respect to xi at xi = 0, x = estimates + scales * xi.

    The autograd Hessian needs every operation to be twice differentiable; it is verified
    by comparing H v with a central difference of the gradient along a random v (a custom
    function with a first-order-only backward, such as the mesh eigen-solver, fails it)."""

    def shifted(xi: torch.Tensor) -> torch.Tensor:
        return objective(estimates + scales * xi)

    def gradient_at(xi: torch.Tensor) -> torch.Tensor:
        point = xi.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(shifted(point), point)
        return g.detach()

    origin = torch.zeros_like(estimates)
    gradient = gradient_at(origin)
    hessian = torch.autograd.functional.hessian(shifted, origin).detach()
    hessian = 0.5 * (hessian + hessian.T)
    direction = torch.randn(origin.shape, dtype=DTYPE, generator=torch.Generator().manual_seed(1))
    direction = direction / torch.linalg.vector_norm(direction)
    step = _CHECK_STEP * direction
    difference = (gradient_at(step) - gradient_at(-step)) / (2 * _CHECK_STEP)
    product = hessian @ direction
    scale = float(torch.linalg.vector_norm(hessian, ord=2)) or 1.0
    verified = float((difference - product).abs().max()) <= _CHECK_RTOL * scale
    return gradient, hessian, verified


def covariance_from_curvature(
    curvature: torch.Tensor, scales: torch.Tensor
) -> tuple[torch.Tensor, float, bool]:
    """(physical covariance, condition number, positive definite) from the curvature
    matrix in scaled coordinates; NaN covariance if it is not positive definite."""
    eigenvalues = torch.linalg.eigvalsh(curvature)
    smallest, largest = float(eigenvalues.min()), float(eigenvalues.max())
    positive = smallest > 1e-13 * max(abs(largest), 1e-300)
    condition = largest / smallest if positive else math.inf
    size = curvature.shape[0]
    if not positive:
        return torch.full((size, size), math.nan, dtype=DTYPE), condition, False
    inverse = torch.linalg.inv(curvature)
    inverse = 0.5 * (inverse + inverse.T)
    return inverse * scales[:, None] * scales[None, :], condition, True


def newton_decrement(gradient: torch.Tensor, curvature: torch.Tensor, positive: bool) -> float:
    """g^T H^-1 g / 2: the decrease of the objective still available, to second order."""
    if not positive:
        return math.inf
    return 0.5 * float(gradient @ torch.linalg.solve(curvature, gradient))
