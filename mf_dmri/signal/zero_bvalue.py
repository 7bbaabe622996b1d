"""Exact derivatives with respect to b at b = 0.

An acquisition built from b-values has amplitudes G = sqrt(b / b_unit), whose derivative
is infinite at b = 0 while dE/dG is 0 there, so autograd gives dE/db = 0 (the square
root's gradient is masked).  The true value is finite: for a refocused waveform the real
part of the signal is even in G (the propagator at -G is the complex conjugate of the one
at G, and the first moment of the gradient vanishes), so with s = b / b_unit

    Re E = E_0 + c_1 s + c_2 s^2 + O(s^3),   c_1 = E''(0) / 2,   c_2 = E''''(0) / 24,

with E^(k)(0) the amplitude derivatives at G = 0, which the propagation keeps exact up to
order 4 (``mf_dmri.signal.reduction``, HIDDEN_ORDER).  The imaginary part is odd in G and
starts at G^3 for a refocused waveform, so its b-derivatives of orders 1 and 2 at 0 are 0.
:func:`with_zero_bvalue_derivatives` adds ``c_1 u + c_2 u^2`` to those rows, with
``u = (b - b.detach()) / b_unit`` zero in value: the value is unchanged, dE/db = c_1 /
b_unit and d2E/db2 = 2 c_2 / b_unit^2 are exact, and mixed derivatives (b with D, with a
radius, ...) are exact to first order in b because c_1 keeps its graph.

Cost: c_1 takes two nested amplitude derivatives of the signal of the b = 0 rows.  The
fourth derivative behind c_2 is computed only when a second derivative is recorded
(``create_graph=True`` in the backward): nested derivatives of matrix exponentials double
the matrix size per order, so it costs far more than the signal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from mf_dmri.sequences.pieces import GradientPieces


def with_zero_bvalue_derivatives(
    values: torch.Tensor,
    acquisition,
    time_step: float | None,
    evaluate: Callable[[GradientPieces], torch.Tensor],
) -> torch.Tensor:
    """``values`` (M,) with the exact b-derivatives added at the b = 0 rows that
    ``acquisition.zero_bvalues`` records (see the module docstring); unchanged without
    them or when gradients are off.

    Args:
        values: the signal of every measurement (M,), complex.
        acquisition: the ``Acquisition`` (anything else is returned unchanged).
        time_step: longest piece of smooth waveforms [s], as for ``values``.
        evaluate: the signal of some pieces with the same bases as ``values`` (the cutoff
            chosen for the whole acquisition), complex (Z,).
    """
    zero = getattr(acquisition, "zero_bvalues", None)
    if zero is None or not torch.is_grad_enabled():
        return values
    device = values.device
    rows = zero.rows.to(device)
    amplitude = torch.zeros(rows.numel(), dtype=zero.unit_bvalues.dtype, device=device)
    amplitude.requires_grad_(True)
    sub = replace(
        acquisition,
        directions=acquisition.directions[rows],
        amplitudes=amplitude,
        zero_bvalues=None,
    )
    second = _derivative(_derivative(evaluate(sub.pieces(time_step)).real, amplitude), amplitude)

    def fourth() -> torch.Tensor:  # called from a backward, where grad mode may be off
        with torch.enable_grad():
            return _derivative(_derivative(second, amplitude), amplitude)

    step = (zero.bvalues - zero.bvalues.detach()).to(device) / zero.unit_bvalues.to(device)
    correction = 0.5 * second * step + _Quadratic.apply(step, fourth)
    return values.index_add(0, rows, correction.to(values.dtype))


def _derivative(values: torch.Tensor, amplitude: torch.Tensor) -> torch.Tensor:
    """d values_m / d amplitude_m per row (each row depends on its own amplitude only),
    with its graph kept (for higher and mixed derivatives)."""
    if not values.requires_grad:  # nothing depends on the amplitude any more
        return torch.zeros_like(amplitude)
    (result,) = torch.autograd.grad(
        values.sum(), amplitude, create_graph=True, retain_graph=True, allow_unused=True
    )
    return torch.zeros_like(amplitude) if result is None else result


class _Quadratic(torch.autograd.Function):
    """c_2 u^2 for u zero in value, c_2 = E''''(0) / 24 from ``fourth()`` [(T/m)^-4].
    Its gradient 2 c_2 u is zero in value too; when the backward is recorded it is
    :class:`_Scaled` of u, which evaluates ``fourth()`` only if differentiated in turn
    (a second derivative in b; a mixed one's path does not pass through it)."""

    @staticmethod
    def forward(ctx, step, fourth):  # noqa: D102
        ctx.save_for_backward(step)
        ctx.fourth = fourth
        return torch.zeros_like(step)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (step,) = ctx.saved_tensors
        if not torch.is_grad_enabled():  # first order only
            return torch.zeros_like(step), None
        return _Scaled.apply(grad * step, ctx.fourth), None


class _Scaled(torch.autograd.Function):
    """2 c_2 x = x E''''(0) / 12 for x zero in value; ``fourth()`` is evaluated in the
    backward only."""

    @staticmethod
    def forward(ctx, value, fourth):  # noqa: D102
        ctx.fourth = fourth
        return torch.zeros_like(value)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return grad * (ctx.fourth() / 12.0), None
