"""Time integrals of products of wavevector shapes, from which b-values and b-tensors follow.

For a shape with wavevector shape ``F(t) = integral_0^t f`` (C channels), the channel Gram
matrix is ``K = integral_0^TE F(t) F(t)^T dt`` [s^3].  An acquisition with amplitude ``G``
[T/m] and channel directions ``d_c`` has b-tensor
``B = gamma^2 G^2 sum_{c,c'} K_{cc'} d_c d_{c'}^T`` [s/m^2].
"""

from __future__ import annotations

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.sequences.shape import WaveformShape

#: Gauss-Legendre nodes per smooth segment (a quarter oscillation at most); exact for
#: polynomials of degree 39, so far below 1e-12 relative for quarter periods of sin^2 even
#: without the cancellation of errors over whole periods.
GAUSS_LEGENDRE_ORDER = 20


def _outer(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    return left[..., :, None] * right[..., None, :]


def piecewise_gram(durations: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Exact Gram matrix (C, C) [s^3] of a piecewise-constant shape.

    Args:
        durations: (P,) piece durations [s].
        values: (P, C) shape values [-] on each piece.
    """
    steps = values * durations[:, None]
    end = torch.cumsum(steps, dim=0)
    start = end - steps
    # F is linear on each piece: integral of F F^T = tau/3 (a a^T + b b^T + (a b^T + b a^T)/2)
    per_piece = (
        durations[:, None, None]
        / 3.0
        * (
            _outer(start, start)
            + _outer(end, end)
            + 0.5 * (_outer(start, end) + _outer(end, start))
        )
    )
    return per_piece.sum(dim=0)


def quadrature_gram(shape: WaveformShape) -> torch.Tensor:
    """Gram matrix (C, C) [s^3] over [0, duration] by composite Gauss-Legendre quadrature of
    the closed-form ``shape.wavevector_shape`` between its quadrature breakpoints."""
    breakpoints = shape.quadrature_breakpoints()
    nodes, weights = np.polynomial.legendre.leggauss(GAUSS_LEGENDRE_ORDER)
    nodes = torch.as_tensor(nodes, dtype=DTYPE, device=breakpoints.device)
    weights = torch.as_tensor(weights, dtype=DTYPE, device=breakpoints.device)
    starts, ends = breakpoints[:-1], breakpoints[1:]
    half_widths = 0.5 * (ends - starts)
    times = 0.5 * (starts + ends)[:, None] + half_widths[:, None] * nodes[None, :]
    wavevectors = shape.wavevector_shape(times)  # (K, N, C)
    weighted = (half_widths[:, None] * weights[None, :])[..., None, None]
    return (weighted * _outer(wavevectors, wavevectors)).sum(dim=(0, 1))


def wavevector_gram(shape: WaveformShape, echo_time: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix ``integral_0^TE F F^T dt`` (C, C) [s^3] of a shape.

    Exact for piecewise-constant shapes; Gauss-Legendre quadrature of the closed-form
    wavevector for smooth ones.  After the end of the shape (up to ``echo_time`` [s]) the
    wavevector stays at its final value.
    """
    if shape.is_piecewise_constant:
        gram = piecewise_gram(*shape.pieces())
    else:
        gram = quadrature_gram(shape)
    if echo_time is None:
        return gram
    final = shape.wavevector_shape(shape.duration)
    return gram + (echo_time - shape.duration) * _outer(final, final)
