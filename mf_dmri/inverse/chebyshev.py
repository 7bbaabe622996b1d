"""Tensor-product Chebyshev interpolation on a rectangle, evaluated in torch with its
first derivatives (forward-mode differentiable through :class:`ChebyshevEvaluate`).

A smooth function f(u, v) sampled at the Chebyshev-Lobatto points u_i = cos(pi i / n)
(mapped to the rectangle) is represented by coefficients c_jk of T_j(u) T_k(v), computed
with the type-I discrete cosine transform; for an analytic f the coefficients and the
interpolation error decay geometrically with the degree (Trefethen 2019, "Approximation
Theory and Approximation Practice", ch. 8).  :func:`fit_chebyshev` doubles the degree until
the interpolant agrees with f at independent check points to a tolerance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft
import torch

from mf_dmri._checks import DTYPE

logger = logging.getLogger(__name__)


def lobatto_points(degree: int) -> np.ndarray:
    """The degree + 1 Chebyshev-Lobatto points cos(pi i / degree) in [-1, 1]."""
    return np.cos(np.pi * np.arange(degree + 1) / degree)


def _coefficients(values: np.ndarray) -> np.ndarray:
    """Chebyshev coefficients of samples at Lobatto points (both axes), by DCT-I."""
    coefficients = values
    for axis in (0, 1):
        n = values.shape[axis] - 1
        coefficients = scipy.fft.dct(coefficients, type=1, axis=axis) / n
        index = [slice(None)] * 2
        for end in (0, n):
            index[axis] = end
            coefficients[tuple(index)] /= 2
    return coefficients


def _basis(t: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """T_k(t) and T_k'(t) for k < count, each (count, N), by the three-term recurrences
    T_k = 2 t T_(k-1) - T_(k-2) and T_k' = 2 T_(k-1) + 2 t T_(k-1)' - T_(k-2)'."""
    values = torch.empty(count, t.shape[0], dtype=t.dtype, device=t.device)
    slopes = torch.empty_like(values)
    values[0], slopes[0] = 1.0, 0.0
    if count > 1:
        values[1], slopes[1] = t, 1.0
    twice = 2 * t
    for k in range(2, count):
        torch.addcmul(-values[k - 2], twice, values[k - 1], out=values[k])
        torch.addcmul(2 * values[k - 1] - slopes[k - 2], twice, slopes[k - 1], out=slopes[k])
    return values, slopes


@dataclass(frozen=True)
class ChebyshevTable:
    """Coefficients (n_u + 1, n_v + 1) of f on [u_lo, u_hi] x [v_lo, v_hi], with the
    largest interpolation error measured at the check points (``checked_error``)."""

    coefficients: torch.Tensor
    u_range: tuple[float, float]
    v_range: tuple[float, float]
    checked_error: float

    def _scaled(self, x, bounds):
        lo, hi = bounds
        return (2 * x - (lo + hi)) / (hi - lo), 2 / (hi - lo)

    def evaluate(self, u: torch.Tensor, v: torch.Tensor):
        """(f, df/du, df/dv), each (N, K), at the points (u_n, v_nk) for u (N,) and v
        (N, K): the u-polynomials are summed once per row, so a row of K points costs
        O(K n_v).  Points must lie in the rectangle (up to 1e-9 of its size)."""
        s, su = self._scaled(u, self.u_range)
        t, tv = self._scaled(v, self.v_range)
        if bool((s.abs() > 1 + 1e-9).any()) or bool((t.abs() > 1 + 1e-9).any()):
            raise ValueError(
                "a point lies outside the interpolation table's rectangle "
                f"u in {self.u_range}, v in {self.v_range}; rebuild the table for the range"
            )
        u_basis, u_slope = _basis(s.clamp(-1, 1), self.coefficients.shape[0])
        v_basis, v_slope = _basis(t.clamp(-1, 1).reshape(-1), self.coefficients.shape[1])
        v_basis = v_basis.reshape(-1, *v.shape)  # (n_v, N, K)
        v_slope = v_slope.reshape(-1, *v.shape)
        transposed = self.coefficients.T
        along_u = transposed @ u_basis  # (n_v, N)
        slope_u = transposed @ u_slope
        value = torch.einsum("an,ank->nk", along_u, v_basis)
        du = torch.einsum("an,ank->nk", slope_u, v_basis) * su
        dv = torch.einsum("an,ank->nk", along_u, v_slope) * tv
        return value, du, dv


class ChebyshevEvaluate(torch.autograd.Function):
    """f(u, v) from a :class:`ChebyshevTable`, differentiable in forward and reverse mode
    through its exact polynomial derivatives, and vmappable (batched Jacobians)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(u, v, table):
        return table.evaluate(u.detach(), v.detach())

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, du, dv = output
        ctx.save_for_backward(du, dv)
        ctx.save_for_forward(du, dv)
        ctx.mark_non_differentiable(du, dv)

    @staticmethod
    def backward(ctx, grad, _du, _dv):
        du, dv = ctx.saved_tensors
        return (grad * du).sum(1), grad * dv, None

    @staticmethod
    def jvp(ctx, u_tangent, v_tangent, _table):
        du, dv = ctx.saved_tensors
        tangent = torch.zeros_like(du)
        if u_tangent is not None:
            tangent = tangent + du * u_tangent[:, None]
        if v_tangent is not None:
            tangent = tangent + dv * v_tangent
        return tangent, None, None


def chebyshev_value(table: ChebyshevTable, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """f(u_n, v_nk) (N, K) for u (N,) and v (N, K), differentiable in u and v (forward
    and reverse mode)."""
    value, _, _ = ChebyshevEvaluate.apply(u, v, table)
    return value


def fit_chebyshev(
    function: Callable[[np.ndarray, np.ndarray], np.ndarray],
    u_range: tuple[float, float],
    v_range: tuple[float, float],
    *,
    tolerance: float,
    degrees: tuple[int, ...] = (24, 32, 48, 64, 96, 128, 192, 256),
    checks: int = 24,
) -> ChebyshevTable:
    """Interpolate ``function(us (n,), vs (m,)) -> (n, m)`` on the rectangle, doubling the
    degree until the largest error at ``checks`` x ``checks`` interior check points (not
    nodes of any tried grid) is below ``tolerance``; raises if the largest degree fails."""
    rng = np.random.default_rng(0)
    check_u = np.sort(rng.uniform(-0.999, 0.999, checks))
    check_v = np.sort(rng.uniform(-0.999, 0.999, checks))

    def mapped(points, bounds):
        lo, hi = bounds
        return lo + (points + 1) * (hi - lo) / 2

    exact = function(mapped(check_u, u_range), mapped(check_v, v_range))
    grid_u, grid_v = np.meshgrid(check_u, check_v, indexing="ij")
    error = np.inf
    for degree in degrees:
        nodes = lobatto_points(degree)
        values = function(mapped(nodes, u_range), mapped(nodes, v_range))
        table = ChebyshevTable(
            torch.as_tensor(_coefficients(values), dtype=DTYPE), u_range, v_range, np.inf
        )
        u = torch.as_tensor(mapped(grid_u[:, 0], u_range), dtype=DTYPE)
        v = torch.as_tensor(mapped(grid_v, v_range), dtype=DTYPE)
        approximate = table.evaluate(u, v)[0].numpy()
        error = float(np.abs(approximate - exact).max())
        logger.info("chebyshev table degree %d: checked error %.2e", degree, error)
        if error <= tolerance:
            return ChebyshevTable(table.coefficients, u_range, v_range, error)
    raise ValueError(
        f"the interpolation table did not reach {tolerance:g} (error {error:.2e} at degree "
        f"{degrees[-1]}): the parameter range is too wide for one table; narrow the bounds"
    )
