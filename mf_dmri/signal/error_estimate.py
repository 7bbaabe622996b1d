"""The signal with its error bar: :func:`signal_with_error` (the one estimator).

The matrix formalism keeps the Neumann eigenmodes (or the coupled modes of a permeable
system) up to a cutoff.  Its truncation error is estimated a posteriori on a ladder of
cutoffs, each twice the previous (:mod:`mf_dmri.signal.cutoff_ladder`): the ladder climbs
until two consecutive changes ESTIMATE_SAFETY x |E(lambda_j) - E(2 lambda_j)| are within the
tolerance (one change alone can pass near zero where the error changes sign), and the bar
of each measurement is the larger of the two.  One policy for every basis:

* a restricted factor with a source (an analytic shape built without a cutoff) climbs from
  the a-priori cutoff of :mod:`mf_dmri.signal.cutoff`, rebuilt at each level, and is
  reported at the middle level of the accepted three: per factor, with its share of the
  tolerance, so each compartment (a slow or a small one needs fewer modes) gets its own
  cutoff;
* a fixed basis (a mesh) is truncated at lambda_max / 2^k (k = K .. 1, K >= 2, lambda_max /
  2^K near the a-priori cutoff) and then used whole; it is reported at the finest level of
  the check (its modes are already computed), which the middle's bar covers
  conservatively;
* a coupled (permeable) basis, whose modes span every compartment, climbs in its rate
  (:mod:`mf_dmri.signal.coupled_error`);
* an explicit ``max_eigenvalue`` (and ``reference_max_eigenvalue``) fixes one pair instead,
  whose single change is the bar (e.g. to check a mesh cutoff with the reference at
  4 lambda_c, docs/btpde.md).

The estimate is validated against converged references (validation/coverage_study.md,
tests/test_error_control.py) and against the time-stepping BTPDE on meshes
(tests/test_btpde_error_estimate.py, validation/btpde_report.md); to check a cutoff
against the BTPDE directly, use :func:`mf_dmri.signal.btpde_check.compare_with_btpde`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from mf_dmri.coupled import CoupledBasis
from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.api import as_pieces, compartment_sum
from mf_dmri.signal.compartment import Compartment, as_compartments, compartment_weights
from mf_dmri.signal.coupled_error import coupled_signal_with_error
from mf_dmri.signal.cutoff import (
    DEFAULT_MEMORY_BUDGET,
    ESTIMATE_SAFETY,
    ModeBudgetError,
    adapted_factor,
    check_budget,
    default_tolerance,
    factor_apriori_cutoff,
    factor_cost,
    single_direction,
)
from mf_dmri.signal.cutoff_ladder import climb
from mf_dmri.signal.discretisation import discretisation_error
from mf_dmri.signal.propagation import factor_signal, planned_propagator, prepare_factor
from mf_dmri.signal.propagators import Propagator, needs_derivatives
from mf_dmri.signal.result import SignalResult
from mf_dmri.signal.waveform_error import WAVEFORM_SHARE, refined_in_time
from mf_dmri.signal.zero_bvalue import with_zero_bvalue_derivatives

__all__ = ["ESTIMATE_SAFETY", "signal_with_error"]


def signal_with_error(
    compartments: Compartment | list[Compartment] | CoupledBasis,
    acquisition,
    *,
    tolerance: float | None = None,
    max_eigenvalue: float | None = None,
    reference_max_eigenvalue: float | None = None,
    time_step: float | None = None,
    normalize: bool = True,
    propagator: Propagator | None = None,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    max_doublings: int = 6,
) -> SignalResult:
    """The signal with its error bar (:class:`SignalResult`).

    Each restricted factor starts at the a-priori cutoff lambda_0 of
    :mod:`mf_dmri.signal.cutoff` and is checked a posteriori on a ladder of doubling
    cutoffs (:mod:`mf_dmri.signal.cutoff_ladder`): it climbs until two consecutive changes
    of the factor's signal, ESTIMATE_SAFETY |E(lambda_j) - E(2 lambda_j)|, are both within
    its share of ``tolerance`` (the tolerance split evenly over the factors).  The bar of
    each measurement is the larger of the two changes, weighted like the signal (|E| <= 1
    per factor, so errors of factors and compartments add).  An analytic factor is rebuilt
    at each cutoff and reported at the middle one of the accepted three; a fixed basis (a
    mesh) is truncated at lambda_max / 2^k and reported at the finest level checked (all of
    it when the ladder reaches lambda_max).  With ``max_eigenvalue`` every factor uses the
    one pair (``max_eigenvalue``, ``reference_max_eigenvalue``) instead, its one change as
    the bar.  A :class:`~mf_dmri.coupled.CoupledBasis` (permeable compartments): see
    :func:`~mf_dmri.signal.coupled_error.coupled_signal_with_error`.  The discretisation
    error of a mesh factor is bounded by P1 versus P2 on its mesh
    (:mod:`mf_dmri.signal.discretisation`; zero for closed forms); the propagation error
    is the tolerance of the propagator used for each factor (by default the one
    :func:`~mf_dmri.signal.propagators.choose_propagator` picks, as in
    :func:`~mf_dmri.signal.api.signal`); a smooth waveform (OGSE) is refined in time with
    the accepted bases until halving its pieces changes the signal by at most a quarter of
    ``tolerance``, and that change is its waveform error
    (:mod:`mf_dmri.signal.waveform_error`).  If the bar exceeds ``tolerance`` (a fixed basis
    too small, a fixed pair too coarse, ``max_doublings`` or the memory budget reached)
    the result says so:
    ``within_tolerance`` is False.

    Args:
        compartments: one ``Compartment``, a list, or one ``CoupledBasis``.
        acquisition: an ``Acquisition`` or ``GradientPieces``.
        tolerance: requested absolute tolerance on the signal [signal unit] (default 1e-4
            for analytic shapes, 1e-3 with a mesh or a coupled basis).
        max_eigenvalue: a fixed cutoff lambda_c [1/m^2] instead of the adaptive one; the
            error is estimated against ``reference_max_eigenvalue``.
        reference_max_eigenvalue: the finer cutoff of the fixed pair [1/m^2], larger than
            ``max_eigenvalue`` (default 2 ``max_eigenvalue``; a fixed basis holding less is
            used whole).  Only with ``max_eigenvalue``.
        time_step: longest piece for smooth waveforms [s] (as in :func:`signal`).
        normalize: as in :func:`signal`.
        propagator: as in :func:`signal` (default: chosen by measured cost).
        memory_budget: largest predicted memory of one basis [bytes]; one of the first
            three levels beyond it raises ``ModeBudgetError``, a later one ends the ladder.
        max_doublings: most doublings of a factor's cutoff.

    The signal is differentiable like that of :func:`signal`, b-derivatives at b = 0
    included (:mod:`mf_dmri.signal.zero_bvalue`).
    """
    pieces = as_pieces(acquisition, time_step)
    if isinstance(compartments, CoupledBasis):
        if max_eigenvalue is not None or reference_max_eigenvalue is not None:
            raise ValueError(
                "a CoupledBasis is fixed: build it at the cutoff you want "
                "(permeable_eigenbasis(..., max_rate=...)) instead of passing max_eigenvalue"
            )
        return coupled_signal_with_error(
            compartments,
            pieces,
            tolerance=tolerance,
            normalize=normalize,
            propagator=propagator,
            acquisition=None if isinstance(acquisition, GradientPieces) else acquisition,
            time_step=time_step,
        )
    compartments = as_compartments(compartments)
    fixed_pair = _fixed_cutoffs(max_eigenvalue, reference_max_eigenvalue)
    factors = _factors(compartments)
    tol = default_tolerance(factors, tolerance)
    share = tol / max(len(factors), 1)

    def levels(factor: Eigenbasis, rate: float):
        if fixed_pair is not None:
            return iter(_fixed_pair(factor, pieces, *fixed_pair, memory_budget))
        if factor.source is None:
            return _fixed_levels(factor, rate, pieces, share)
        return _cutoff_levels(factor, rate, pieces, share, memory_budget, max_doublings)

    checked = [
        [
            _checked_factor(f, c.diffusivity, pieces, share, levels, propagator)
            for f in c.domain.factors
        ]
        for c in compartments
    ]
    fixed = tuple(
        replace(c, domain=replace(c.domain, factors=tuple(item[0] for item in row)))
        for c, row in zip(compartments, checked)
    )
    # without derivatives, the accepted factors' signals computed by the check are reused
    known = None if _differentiated(fixed, pieces) else [[i[4] for i in row] for row in checked]

    def at_time_step(step: float | None) -> torch.Tensor:  # the accepted bases
        some, reused = (
            (pieces, known) if step == time_step else (as_pieces(acquisition, step), None)
        )
        value = compartment_sum(
            fixed, some, normalize=normalize, propagator=propagator, factor_values=reused
        )
        return with_zero_bvalue_derivatives(
            value, acquisition, step, lambda zero: compartment_sum(fixed, zero, normalize=normalize)
        )

    value = at_time_step(time_step)
    scale = torch.ones_like(value.real) if normalize else value.abs().max().detach()
    value, waveform = refined_in_time(
        value, acquisition, time_step, at_time_step, WAVEFORM_SHARE * tol * float(scale.max())
    )
    scales = _compartment_scales(compartments, pieces, normalize)
    zero = torch.zeros_like(value.real).detach()
    errors = [
        sum((s * sum(item[k] for item in row) for s, row in zip(scales, checked)), zero)
        for k in (1, 2, 3)
    ]
    adapted = _factors(fixed)
    return SignalResult(
        signal=value,
        truncation_error=errors[0].detach(),
        discretisation_error=errors[1].detach(),
        propagation_error=(errors[2] * scale).detach(),
        waveform_error=waveform,
        tolerance=tol,
        num_modes=tuple(f.num_modes for f in adapted),
        max_eigenvalues=tuple(float(f.eigenvalues.detach()[-1]) for f in adapted),
    )


def _differentiated(compartments: tuple[Compartment, ...], pieces) -> bool:
    """Whether autograd records the factors' signals (their bases, diffusivity or pieces)."""
    tensors = [pieces.durations, pieces.gradients]
    for compartment in compartments:
        tensors.append(compartment.diffusivity)
        for f in compartment.domain.factors:
            tensors += [f.eigenvalues, f.moments, f.mode_integrals, f.volume, f.axes]
    return needs_derivatives(*tensors)


def _factors(compartments: tuple[Compartment, ...]) -> list[Eigenbasis]:
    return [f for c in compartments for f in c.domain.factors]


def _compartment_scales(compartments, pieces, normalize: bool) -> list[float]:
    """|weight| of each compartment in the signal (divided by the normalisation)."""
    device = compartments[0].domain.free_axes.device
    weights, reference = compartment_weights(compartments, pieces.echo_time.to(device))
    norm = float(reference.detach()) if normalize else 1.0
    return [abs(float(torch.as_tensor(w).detach())) / norm for w in weights]


def _checked_factor(
    factor: Eigenbasis,
    diffusivity: torch.Tensor,
    pieces,
    share: float,
    levels,
    propagator: Propagator | None,
) -> tuple[Eigenbasis, torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """(basis reported, its truncation-error bound (M,), its discretisation error (M,), the
    tolerance of its propagator, its signal (M,) computed without derivatives) of one
    factor (see :func:`signal_with_error`); ``levels(factor, rate)`` yields the bases of
    the ladder (:mod:`mf_dmri.signal.cutoff_ladder`), coarse first."""
    rate = float(diffusivity.detach())
    values: dict[int, torch.Tensor] = {}

    def evaluate(basis: Eigenbasis) -> torch.Tensor:
        key = id(basis)
        if key not in values:
            with torch.no_grad():
                values[key] = factor_signal(
                    basis, diffusivity.detach(), pieces, propagator=propagator
                )
        return values[key]

    ladder = climb(levels(factor, rate), evaluate, share, lambda basis: basis.num_modes)
    # a rebuilt (analytic) basis reports the middle level, whose error the bar bounds; a
    # fixed basis reports every mode of the check (the finest), conservatively covered
    reported = ladder.middle if ladder.accepted and factor.source is not None else ladder.finest
    value = evaluate(reported)
    discretisation = discretisation_error(factor, reported, rate, pieces, value, propagator)
    # planned as the signal will be (with autograd: derivatives at g = 0 change the choice)
    used = planned_propagator(prepare_factor(reported, pieces), 1, propagator)
    return reported, ladder.bar, discretisation, used.tolerance, value


def _cutoff_levels(factor, rate, pieces, share, memory_budget, max_doublings):
    """Yield the factor rebuilt from its source at lambda_0 2^j, j = 0 .. max_doublings
    (lambda_0 the a-priori cutoff).  A level over ``memory_budget`` raises
    :class:`ModeBudgetError` while the ladder has fewer than three levels (two changes);
    later it ends the ladder (the result then reports its finest level, ``accepted``
    False)."""
    for level in range(max_doublings + 1):
        try:
            basis = adapted_factor(factor, rate, pieces, share, memory_budget, level)
        except ModeBudgetError:
            if level < 3:
                raise
            return
        yield basis


def _fixed_levels(factor: Eigenbasis, rate: float, pieces, share: float):
    """Yield a fixed basis (a mesh) truncated at lambda_max / 2^k, k = K .. 1, then whole:
    the ladder ends with every mode it holds.  K >= 2 (a ladder of three levels at least)
    and, when the basis holds more than the a-priori cutoff lambda_0 needs, the largest
    with lambda_max / 2^K >= lambda_0."""
    largest = float(factor.eigenvalues.detach()[-1])
    start = factor_apriori_cutoff(factor, rate, pieces, share)
    steps = max(2, math.floor(math.log2(largest / start))) if 0 < start < largest else 2
    for k in range(steps, 0, -1):
        yield factor.truncated(largest / 2.0**k)
    yield factor


def _fixed_cutoffs(
    max_eigenvalue: float | None, reference_max_eigenvalue: float | None
) -> tuple[float, float] | None:
    """The checked pair (lambda_c, lambda_ref) [1/m^2], or None for the adaptive cutoff."""
    if max_eigenvalue is None:
        if reference_max_eigenvalue is not None:
            raise ValueError(
                "reference_max_eigenvalue needs max_eigenvalue (the fixed cutoff [1/m^2]); "
                "pass both, or neither for the adaptive cutoff"
            )
        return None
    cutoff = _check_cutoff(max_eigenvalue, "max_eigenvalue")
    if reference_max_eigenvalue is None:
        return cutoff, 2.0 * cutoff
    reference = _check_cutoff(reference_max_eigenvalue, "reference_max_eigenvalue")
    if reference <= cutoff:
        raise ValueError(
            "reference_max_eigenvalue must be larger than max_eigenvalue [1/m^2]; two to four "
            "times max_eigenvalue is a good choice"
        )
    return cutoff, reference


def _check_cutoff(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number [1/m^2], got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite eigenvalue [1/m^2], got {value!r}")
    return float(value)


def _fixed_pair(
    factor: Eigenbasis, pieces, cutoff: float, reference: float, memory_budget: float
) -> tuple[Eigenbasis, Eigenbasis]:
    """(the factor at ``cutoff``, at ``reference``) [1/m^2]: rebuilt from its source, or
    truncated (a fixed basis holding less than ``reference`` is used whole)."""
    source = factor.source
    if source is not None:
        axial = factor.isotropic and single_direction(factor, pieces)
        modes = source.predicted_modes(reference, axial=axial)
        cost = factor_cost(modes, factor.dimension, pieces, reference, axial)
        check_budget(cost, memory_budget, factor.label)
        fine = source.basis(reference, factor.axes, axial=axial).to(factor.device)
    else:
        fine = factor.truncated(min(reference, float(factor.eigenvalues.detach()[-1])))
    coarse = fine.truncated(cutoff)
    if coarse.num_modes == fine.num_modes:
        raise ValueError(
            f"the {factor.label or 'mesh'} basis holds no mode between max_eigenvalue and the "
            "reference cutoff, so the error cannot be estimated; compute the basis with a "
            "larger cutoff (e.g. 4 x max_eigenvalue) or lower max_eigenvalue"
        )
    return coarse, fine
