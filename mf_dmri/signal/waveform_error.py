"""The error of propagating a smooth waveform as constant pieces, and its bound.

A smooth shape (OGSE) is propagated as equal pieces of length h, each holding the shape's
exact average over it, so the wavevector q(t) is exact at every piece end; what is left
out is the variation of the gradient inside a piece.  The scheme is symmetric, of second
order in h: on a 10 um sphere under cosine OGSE (2 periods of 20 ms, b = 1000 s/mm^2) the
error against an ODE integration of the continuous waveform fell 1.34e-4, 3.5e-5, 9.9e-6
at 128, 256 and 512 pieces per period (ratios 3.8 and 3.5; tests/test_waveform_error.py
fits the rate on its own cases).  The default 128 pieces per period can thus miss a 1e-4
tolerance, and no cutoff ladder sees it (every level uses the same pieces).

:func:`refined_in_time` halves h, with the bases already accepted, until the change of the
signal is within its share of the tolerance (``WAVEFORM_SHARE``), and reports the finest
signal with the last change as its bound: the error of the finer signal is
``|E_h - E_{h/2}| r / (1 - r)`` when each halving divides it by ``1 / r``, at most the change
for any r <= 1/2 and a third of it at the second-order rate r = 1/4.  Piecewise-constant
shapes (PGSE, double PGSE, sampled waveforms) are exact: no refinement, a zero bound.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Share of the tolerance that the change of the last halving must be within [-].
WAVEFORM_SHARE = 0.25

#: Most halvings of the piece length (each doubles the cost of the propagation).
MAX_HALVINGS = 4


def piece_length(acquisition, time_step: float | None) -> float | None:
    """Length [s] of the pieces of the smooth parts of ``acquisition``'s waveform at
    ``time_step`` [s]; None for exact (piecewise-constant) waveforms and for
    ``GradientPieces`` given directly."""
    waveform = getattr(acquisition, "waveform", None)
    return None if waveform is None else waveform.piece_length(time_step)


def refined_in_time(
    value: torch.Tensor,
    acquisition,
    time_step: float | None,
    evaluate: Callable[[float], torch.Tensor],
    target: float,
    max_halvings: int = MAX_HALVINGS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the signal at the finest piece length, the bound of its waveform error) (M,).

    Args:
        value: the signal (M,) computed at ``time_step``.
        acquisition: its ``Acquisition`` (or ``GradientPieces``: exact, returned as is).
        time_step: the longest piece [s] ``value`` was computed with (None: the default).
        evaluate: the signal (M,) at a given longest piece [s], with the same bases.
        target: the largest change [signal unit] at which the halving stops.
        max_halvings: most halvings; when the change is still above ``target`` after them
            the bound says so (the result's ``within_tolerance`` may then be False).
    """
    step = piece_length(acquisition, time_step)
    change = torch.zeros_like(value.real).detach()
    if step is None:
        return value, change
    for _ in range(max_halvings):
        step /= 2.0
        finer = evaluate(step)
        change = (finer - value).abs().detach()
        value = finer
        if not change.numel() or float(change.max()) <= target:
            break
    return value, change


def coarse_waveform_error(
    evaluate: Callable[[float | None], torch.Tensor], acquisition, time_step: float | None = None
) -> torch.Tensor | None:
    """Bound (M,) of the waveform error of the signal computed at ``time_step`` [s] itself
    (None: the default pieces), for callers that keep that signal (sweeps):
    ``2 |E_h - E_{h/2}|``, the sum of the changes of all further halvings when each at least
    halves the error (the second-order scheme quarters it).  ``evaluate(step)`` is the
    signal (M,) at a longest piece ``step`` [s].  None for exact waveforms (nothing is
    evaluated)."""
    step = piece_length(acquisition, time_step)
    if step is None:
        return None
    with torch.no_grad():
        return 2.0 * (evaluate(time_step) - evaluate(step / 2.0)).abs()
