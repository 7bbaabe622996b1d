"""Exponential actions piece by piece: what the Krylov propagators share.

:class:`~mf_dmri.signal.krylov.KrylovExponential` and
:class:`~mf_dmri.signal.shift_invert.ShiftInvertExponential` both propagate the state of
every row of a batch (W, L) through the pieces of the waveform by the action of each piece's
exponential, never the exponential itself; they differ only in how one action is computed.
This module holds the rest, used by both:

* :class:`Generators`, the generators of a batch

      A_w x = D_w Lambda x + i gamma (g_w . Q) x  (+ D_w W x with a stiffness coupling W)

  in the frame in which they are propagated: the complex one, or under a parity plan the
  similar real one (:mod:`mf_dmri.signal.parity`), real arithmetic; a piece with zero
  gradient is diagonal (exact decay, :meth:`Generators.decay`).
* :func:`propagate_pieces`, the loop over the pieces with the error budget: the error
  estimates of all pieces add up to at most ``tolerance`` times |r^T c0| / ||r||, the bound
  of :class:`~mf_dmri.signal.propagators.Propagator` (every generator has a positive
  semi-definite Hermitian part, so the later pieces do not amplify an error).
* :func:`mirrored_pieces`: when the waveform's second half mirrors its first (piece P-1-k is
  the negative of piece k, as in PGSE, double PGSE or a symmetric OGSE) with read-out =
  start, only the first half is propagated: every generator is complex symmetric (Lambda,
  Q, W real symmetric) and A(-g) = conj(A(g)), so

      r^T exp(-t_1 conj A_1) ... M ... exp(-t_1 A_1) c0 = conj(v)^T (M v),
      v = ... exp(-t_1 A_1) c0,

  e.g. E = sum_i exp(-(Delta - delta) D lambda_i) |v_i|^2 for PGSE.
* :func:`safe_norm`, row norms without a NaN derivative at a happy breakdown, and
  :func:`check_tolerance`, the accepted range of a propagator's tolerance.

Every operation is a torch operation, so autograd differentiates the computed values with
respect to every input (eigen-data, diffusivity, durations, gradients, coupling).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mf_dmri._checks import CDTYPE
from mf_dmri.signal.parity import real_moments, similarity
from mf_dmri.signal.propagators import PropagationBatch

#: ``action(state, index, budget)``: the state (W, L) after piece ``index`` from the state
#: before it, within the error budget (W,) of the piece [-].
PieceAction = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]


def check_tolerance(tolerance: float) -> None:
    """Refuse a propagator ``tolerance`` [-] outside [1e-15, 1e-2]."""
    if not (1e-15 <= tolerance <= 1e-2):
        raise ValueError(
            f"tolerance must lie in [1e-15, 1e-2] (a bound on the normalised signal's "
            f"propagation error), got {tolerance!r}"
        )


def propagate_pieces(
    batch: PropagationBatch,
    generators: Generators,
    tolerance: float,
    action: PieceAction,
    *,
    time_course: bool = False,
) -> torch.Tensor:
    """``r^T c(t)`` (W,) at the echo, or (W, P) after every piece: the pieces without
    gradient decay exactly, every other piece is ``action`` within an equal share of
    ``tolerance`` [-] (see the module docstring); a mirrored second half is not propagated
    unless the time course is asked for."""
    count = batch.gradients.shape[0]
    state = generators.start.expand(count, -1)
    pieces = [i for i, plan in enumerate(batch.plans) if plan.kind != "zero"]
    mirror = 0 if time_course else mirrored_pieces(batch, generators)
    active = len(pieces) - sum(1 for i in pieces if i >= len(batch.plans) - mirror)
    norm_r = torch.linalg.vector_norm(generators.readout.detach(), dim=-1)
    reference = (generators.readout.detach() * generators.start.detach()).sum(-1).abs()
    budget = tolerance * reference / norm_r / max(active, 1)  # per piece, (W or 1,)
    history, half = [], None
    for index in range(len(batch.plans) - mirror):
        if index == mirror and mirror:
            half = state
        if batch.plans[index].kind == "zero":
            state = generators.decay(state, batch.durations[index])
        else:
            state = action(state, index, budget.expand(count))
        if time_course:
            history.append((state * generators.readout).sum(-1).to(CDTYPE))
    if time_course:
        return torch.stack(history, dim=1)
    if mirror:
        half = state if half is None else half
        return (half.conj() * state).sum(-1).to(CDTYPE)
    return (state * generators.readout).sum(-1).to(CDTYPE)


def mirrored_pieces(batch: PropagationBatch, generators: Generators) -> int:
    """How many pieces at the end mirror (negated gradients, same durations) the pieces at
    the start, when the mirrored formula of the module docstring applies; else 0."""
    coupling = generators.coupling
    if coupling is not None and not torch.equal(coupling, coupling.T):
        return 0
    start, readout = generators.start.detach(), generators.readout.detach()
    if start.is_complex() and bool(start.imag.any()):
        return 0
    if not torch.equal(start.expand_as(readout), readout.expand_as(start)):
        return 0
    grads, tau = batch.gradients.detach(), batch.durations.detach()
    count = len(batch.plans)
    mirror = 0
    for k in range(count // 2):
        same_time = bool(tau[k] == tau[count - 1 - k])
        if not (same_time and torch.equal(grads[:, count - 1 - k], -grads[:, k])):
            break
        mirror = k + 1
    return mirror


@dataclass(frozen=True)
class Generators:
    """The generators of a batch in the frame in which they are propagated: the complex
    one, or the real similar one under a parity plan (start and read-out vectors (W or 1,
    L) in that frame, diffusivity D [m^2/s], coupling W [1/m^2] or None)."""

    rates: torch.Tensor  # (W or 1, L) D lambda [1/s]
    moments: torch.Tensor  # (W or 1, d, L, L) Q, or the real J under parity [m]
    scale: complex | float  # i gamma, or gamma under parity [rad/(s T)]
    start: torch.Tensor
    readout: torch.Tensor
    diffusivity: torch.Tensor
    coupling: torch.Tensor | None

    @staticmethod
    def of(batch: PropagationBatch) -> Generators:
        coupling, parity = batch.coupling, batch.parity
        if parity is not None and coupling is not None:
            raise ValueError("parity needs coupling=None: the coupling may mix parities")
        rates = batch.diffusivity * batch.eigenvalues
        if parity is None:
            start, readout = batch.initial.to(CDTYPE), batch.readout.to(CDTYPE)
            return Generators(
                rates, batch.moments, 1j * batch.gamma, start, readout, batch.diffusivity, coupling
            )
        diagonal = similarity(parity)
        start = (batch.initial / diagonal).real
        readout = (batch.readout * diagonal).real
        if bool((batch.initial / diagonal).imag.any()) or bool(
            (batch.readout * diagonal).imag.any()
        ):
            raise ValueError("parity plan with a start or read-out outside the +1 class")
        moments = real_moments(batch.moments, parity)
        return Generators(rates, moments, batch.gamma, start, readout, batch.diffusivity, None)

    @property
    def num_modes(self) -> int:
        return int(self.rates.shape[-1])

    def decay(self, state: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """Exact propagation over a piece without gradient (diagonal); with a coupling W
        (zero in value) its first-order term -tau D exp(-tau D Lambda) W c, so that its
        derivatives flow (as in :mod:`mf_dmri.signal.dense`)."""
        decay = torch.exp(-tau * self.rates)
        if self.coupling is None:
            return state * decay
        mixed = state @ self.coupling.T.to(state.dtype)
        return decay * (state - tau * self.diffusivity * mixed)

    def generator_action(self, state: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        """A_w x_w for every row: (W, L) from (W, L) and local gradients (W, d) [T/m]."""
        moments = self.moments
        count, size = state.shape
        dim = moments.shape[1]
        if state.is_complex() or (isinstance(self.scale, complex)):
            state = state.to(CDTYPE)
            parts = torch.cat([state.real, state.imag], dim=0)  # (2W, L)
        else:
            parts = state
        if moments.shape[0] == 1:
            products = parts @ moments[0].reshape(dim * size, size).T  # (2W or W, d L)
            products = products.reshape(-1, count, dim, size)
        else:
            stacked = parts.reshape(-1, count, size)
            products = torch.einsum("wkij,swj->swki", moments, stacked)
        if products.shape[0] == 2:
            products = torch.complex(products[0], products[1])
        else:
            products = products[0]
        phase = torch.einsum("wk,wki->wi", gradient.to(products.dtype), products)
        result = self.rates * state + self.scale * phase
        if self.coupling is not None:
            result = result + self.diffusivity * (state @ self.coupling.T.to(state.dtype))
        return result


def safe_norm(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(norm (W,), divisor (W,)): the row norms, and the norms with exact zeros replaced by
    1 (no NaN derivative at a happy breakdown)."""
    squares = (vectors.real**2).sum(-1)
    if vectors.is_complex():
        squares = squares + (vectors.imag**2).sum(-1)
    positive = squares > 0
    root = torch.where(positive, squares, torch.ones_like(squares)).sqrt()
    return torch.where(positive, root, torch.zeros_like(root)), root
