"""The error bar of a coupled (permeable) system's signal.

The modes of a :class:`~mf_dmri.coupled.CoupledBasis` are eigenpairs of one coupled operator
spanning every compartment (exchange mixes them), so its cutoff is one rate for the whole
system, not one per compartment; the compartments enter through the a-priori cutoff, the
largest over the compartments of D_c lambda_c + 1/T2_c with lambda_c the a-priori cutoff of
:mod:`mf_dmri.signal.cutoff` for the compartment's diffusivity and size (a slow compartment
asks for a smaller rate).  The truncation error follows the policy of every other basis:

* a basis with a source (:func:`mf_dmri.fem.permeable_eigenbasis`) is rebuilt at
  max(its own cutoff, the a-priori rate) and at doubled rates until two consecutive changes
  ESTIMATE_SAFETY x |E(rate) - E(2 rate)| are within the tolerance (or ``max_doublings``;
  :mod:`mf_dmri.signal.cutoff_ladder`); the signal is reported at the middle rate of the
  accepted three, its bar the larger of the two changes;
* a basis without a source is fixed, like a mesh factor: the ladder (a quarter of its
  largest rate, half of it, every mode), reported with every mode.

The lower modes of a coupled basis do not depend on how many are kept, so a rebuilt basis
extends the given one.  The finite-element discretisation error is not modelled for
coupled bases (zero in the bar).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from mf_dmri.coupled import CoupledBasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.coupled import coupled_propagator, coupled_signal
from mf_dmri.signal.cutoff import (
    DEFAULT_TOLERANCE,
    apriori_cutoff,
    default_tolerance,
)
from mf_dmri.signal.cutoff_ladder import climb
from mf_dmri.signal.propagation import DEFAULT_CHUNK_BYTES
from mf_dmri.signal.propagators import Propagator
from mf_dmri.signal.result import SignalResult
from mf_dmri.signal.waveform_error import WAVEFORM_SHARE, refined_in_time
from mf_dmri.signal.zero_bvalue import with_zero_bvalue_derivatives


def coupled_signal_with_error(
    basis: CoupledBasis,
    pieces: GradientPieces,
    *,
    tolerance: float | None = None,
    normalize: bool = True,
    propagator: Propagator | None = None,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_doublings: int = 3,
    acquisition=None,
    time_step: float | None = None,
) -> SignalResult:
    """Signal of a coupled basis with its error bar (see the module docstring).

    Args:
        basis: the coupled eigen-data (e.g. :func:`mf_dmri.fem.permeable_eigenbasis`).
        pieces: the acquisition's piecewise-constant gradients.
        tolerance: requested absolute tolerance on the signal [signal unit] (default
            1e-3, as for a mesh); ``within_tolerance`` of the result compares the bar to it.
        normalize: as in :func:`~mf_dmri.signal.coupled.coupled_signal`.
        propagator: as in :func:`~mf_dmri.signal.coupled.coupled_signal`.
        max_chunk_bytes: memory budget of one batch of propagation [bytes].
        max_doublings: most doublings of the rate (each one a new eigen-solve, about 2.8
            times the modes in 3-D).
        acquisition: the ``Acquisition`` that ``pieces`` come from (at ``time_step``):
            when given, the exact b-derivatives at b = 0 are added
            (:mod:`mf_dmri.signal.zero_bvalue`) and a smooth waveform is refined in time
            (:mod:`mf_dmri.signal.waveform_error`); None: ``pieces`` are taken as exact.
        time_step: longest piece of smooth waveforms [s] that ``pieces`` were made with.

    Returns:
        :class:`SignalResult` whose ``num_modes`` and ``max_eigenvalues`` have one entry:
        the modes kept and the largest rate kept [1/s] (a rate, not a Laplace eigenvalue).
    """
    tol = DEFAULT_TOLERANCE["mesh"] if tolerance is None else default_tolerance([], tolerance)
    options = {"normalize": normalize, "max_chunk_bytes": max_chunk_bytes}
    values: dict[int, tuple[CoupledBasis, torch.Tensor]] = {}

    def evaluate(system: CoupledBasis) -> torch.Tensor:
        if id(system) not in values:  # the basis is kept with its value: ids stay unique
            with torch.no_grad():
                value = coupled_signal(system, pieces, propagator=propagator, **options)
            values[id(system)] = (system, value)
        return values[id(system)][1]

    ladder = climb(_levels(basis, pieces, tol, max_doublings), evaluate, tol, _num_modes)
    fine = ladder.middle if ladder.accepted and basis.source is not None else ladder.finest
    truncation = ladder.bar
    used = coupled_propagator(fine, pieces, propagator)
    scale = 1.0 if normalize else float(fine.reference.detach())

    def at_time_step(step: float | None) -> torch.Tensor:
        some = pieces if step == time_step else acquisition.pieces(step)
        value = coupled_signal(fine, some, propagator=propagator, **options)
        if acquisition is None:
            return value
        return with_zero_bvalue_derivatives(
            value, acquisition, step, lambda zero: coupled_signal(fine, zero, **options)
        )

    value, waveform = refined_in_time(
        at_time_step(time_step), acquisition, time_step, at_time_step, WAVEFORM_SHARE * tol * scale
    )
    return SignalResult(
        signal=value,
        truncation_error=truncation,
        discretisation_error=torch.zeros_like(truncation),
        propagation_error=torch.full_like(truncation, used.tolerance * scale),
        waveform_error=waveform,
        tolerance=tol,
        num_modes=(fine.num_modes,),
        max_eigenvalues=(fine.max_rate,),
    )


def apriori_rate(basis: CoupledBasis, pieces: GradientPieces, tolerance: float) -> float:
    """The a-priori cutoff rate [1/s] of a basis with a source: the largest over its
    compartments of D_c lambda_c + 1/T2_c (lambda_c from :func:`apriori_cutoff`)."""
    return max(
        diffusivity * apriori_cutoff(extent, diffusivity, pieces, basis.axes, tolerance) + decay
        for diffusivity, extent, decay in basis.source.compartments
    )


def _levels(basis: CoupledBasis, pieces: GradientPieces, tolerance: float, max_doublings: int):
    """Yield the bases of the ladder, coarse first (see the module docstring)."""
    if basis.source is None:
        yield from _fixed_levels(basis)
        return
    rate = max(basis.max_rate, apriori_rate(basis, pieces, tolerance))
    level = basis if rate == basis.max_rate else _rebuilt(basis, rate)
    yield level
    for _ in range(max(max_doublings, 2)):
        rate *= 2.0
        following = _rebuilt(basis, rate)
        yield following
        if following.num_modes == level.num_modes:  # every mode of the mesh is kept
            return
        level = following


def _num_modes(basis: CoupledBasis) -> int:
    return basis.num_modes


def _rebuilt(basis: CoupledBasis, max_rate: float) -> CoupledBasis:
    """The system of ``basis`` at ``max_rate`` [1/s], in its frame and on its device."""
    return replace(basis.source.basis(max_rate).to(basis.device), axes=basis.axes)


def _fixed_levels(basis: CoupledBasis):
    """The fixed basis truncated at a quarter and half of its largest rate, then whole;
    an error when it holds too few modes to tell the levels apart."""
    if basis.num_modes < 2 or float(basis.rates.detach()[0]) > 0.5 * basis.max_rate:
        raise ValueError(
            f"the coupled basis {basis.label!r} holds too few modes ({basis.num_modes}) to "
            "estimate its truncation error; compute it with a larger cutoff (a smaller "
            "length_scale or a larger max_rate)"
        )
    if float(basis.rates.detach()[0]) <= 0.25 * basis.max_rate:
        yield basis.truncated(0.25 * basis.max_rate)
    yield basis.truncated(0.5 * basis.max_rate)
    yield basis
