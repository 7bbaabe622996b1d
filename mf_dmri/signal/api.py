"""The main call: ``signal(compartments, acquisition)``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import torch

from mf_dmri._checks import CDTYPE
from mf_dmri.coupled import CoupledBasis
from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.compartment import Compartment, as_compartments, compartment_weights
from mf_dmri.signal.coupled import coupled_signal
from mf_dmri.signal.cutoff import DEFAULT_MEMORY_BUDGET, adapted_factor, default_tolerance
from mf_dmri.signal.propagation import DEFAULT_CHUNK_BYTES, factor_signal
from mf_dmri.signal.propagators import Propagator
from mf_dmri.signal.zero_bvalue import with_zero_bvalue_derivatives


class _HasPieces(Protocol):
    def pieces(self, time_step: float | None = None) -> GradientPieces: ...


def as_pieces(
    acquisition: GradientPieces | _HasPieces, time_step: float | None = None
) -> GradientPieces:
    """The ``GradientPieces`` of an acquisition (or the pieces themselves)."""
    if isinstance(acquisition, GradientPieces):
        return acquisition
    if hasattr(acquisition, "pieces"):
        return acquisition.pieces(time_step)
    raise TypeError(f"expected an Acquisition or GradientPieces, got {type(acquisition).__name__}")


def free_signal(
    diffusivity: torch.Tensor, free_axes: torch.Tensor, pieces: GradientPieces
) -> torch.Tensor:
    """Gaussian attenuation exp(-D sum_k a_k^T B a_k) along the free axes ``a_k``, (M,);
    (B, M) for a vector of diffusivities (B,).

    Args:
        diffusivity: diffusion coefficient [m^2/s], scalar or (B,).
        free_axes: (k, 3) unit vectors of the unrestricted directions [-].
        pieces: the acquisition's gradients (their exact b-tensors B [s/m^2] are used).
    """
    rates = torch.as_tensor(diffusivity, dtype=free_axes.dtype, device=free_axes.device)
    if free_axes.shape[0] == 0:
        shape = rates.shape + (pieces.num_measurements,)
        return torch.ones(shape, dtype=CDTYPE, device=free_axes.device)
    btensors = pieces.btensors().to(free_axes.device)
    projected = torch.einsum("ka,mab,kb->m", free_axes, btensors, free_axes)
    return torch.exp(-rates[..., None] * projected).to(CDTYPE)


def domain_signal(
    domain: ProductDomain,
    diffusivity: torch.Tensor,
    pieces: GradientPieces,
    *,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    propagator: Propagator | None = None,
    factor_values: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Normalised echo signal of one product domain, complex (M,).  ``factor_values``:
    the factors' signals (one (M,) tensor per factor) when already computed, else None."""
    result = free_signal(diffusivity, domain.free_axes, pieces)
    for index, factor in enumerate(domain.factors):
        if factor_values is None:
            value = factor_signal(
                factor, diffusivity, pieces, max_chunk_bytes=max_chunk_bytes, propagator=propagator
            )
        else:
            value = factor_values[index]
        result = result * value
    return result


def signal(
    compartments: Compartment | list[Compartment] | CoupledBasis,
    acquisition: Any,
    *,
    time_step: float | None = None,
    normalize: bool = True,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    propagator: Propagator | None = None,
    tolerance: float | None = None,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    """Diffusion MRI signal at the echo by the matrix formalism, complex128 (M,).

    Analytic shapes built without a cutoff get theirs from the acquisition here, by the
    a-priori rule of :mod:`mf_dmri.signal.cutoff` for ``tolerance`` (split evenly over the
    restricted factors); other bases (meshes, a ``CoupledBasis``) are used with every
    mode they hold.  That is the a-priori cutoff only (the damping-and-q rule raised
    until a Gaussian-phase estimate of the modes left out is within half the tolerance,
    :mod:`mf_dmri.signal.gaussian_tail`): nothing is checked a posteriori and no error
    bar is returned.  In validation/apriori_study.md every error of 59 PGSE and
    21 cos-OGSE cases on slabs, disks and balls was within the default 1e-4 (at
    most 0.22 of it), but the rule is an estimate, not a bound; and a smooth waveform's
    pieces add their own error (1.3e-4 for cos-OGSE at the default 128 pieces per period
    in tests/test_waveform_error.py).
    For a number with its bound use
    :func:`~mf_dmri.signal.error_estimate.signal_with_error`, which doubles the cutoff
    until two consecutive changes of the signal are within the tolerance and reports the
    signal at the middle cutoff of the accepted three (a fixed basis: every mode checked),
    so the two calls differ, within that bar.

    The compartments add with weights volume x spin density x exp(-TE/T2), or volume
    fraction x spin density x exp(-TE/T2) when they carry ``volume_fraction`` (required
    when compartments of different kinds, e.g. an infinite cylinder and a sphere, are
    mixed; see :func:`~mf_dmri.signal.compartment.compartment_weights`); TE is the end
    of the acquisition's last gradient piece.  A :class:`~mf_dmri.coupled.CoupledBasis`
    (permeable and/or relaxing compartments of one mesh, from
    :func:`mf_dmri.fem.permeable_eigenbasis`) is one coupled system instead: its rates
    already contain T2 and surface relaxation, and it is normalised by ``r^T M m0``
    (see :func:`mf_dmri.signal.coupled.coupled_signal`); it cannot be mixed with
    ``Compartment`` objects in one call.

    Args:
        compartments: one ``Compartment``, a list of them, or one ``CoupledBasis``.
        acquisition: an ``Acquisition`` (anything with ``pieces(time_step)``) or
            ``GradientPieces``.
        time_step: longest piece used to discretise smooth waveforms such as OGSE [s];
            None for the waveform's default.  Piecewise-constant waveforms are exact.
        normalize: divide by the sum over compartments of volume x spin density (the
            signal without diffusion weighting and without T2 decay), giving a
            dimensionless signal; otherwise the signal is in [m^3] (volume-weighted), or
            dimensionless when the compartments carry volume fractions.
        max_chunk_bytes: memory budget for one batch of propagation [bytes].
        propagator: how the products of exponentials are computed, a
            :class:`~mf_dmri.signal.propagators.Propagator` (default: the one of least
            measured cost, :func:`~mf_dmri.signal.propagators.choose_propagator`).
        tolerance: absolute tolerance on the normalised signal [-] for the automatic
            cutoff (default: 1e-4 for analytic shapes, 1e-3 with a mesh).
        memory_budget: largest predicted memory of one basis and its propagation
            [bytes]; beyond it a ``ModeBudgetError`` names the alternatives.

    Returns:
        complex128 tensor (M,), on the device of the compartments.  Its magnitude is the
        measured attenuation; the phase is non-zero only for non-refocused or asymmetric
        waveforms.  Derivatives with respect to the b-values of
        :meth:`~mf_dmri.sequences.Acquisition.from_bvalues` are exact at b = 0 too
        (:mod:`mf_dmri.signal.zero_bvalue`).
    """
    pieces = as_pieces(acquisition, time_step)
    options = {"normalize": normalize, "max_chunk_bytes": max_chunk_bytes}
    if isinstance(compartments, CoupledBasis):
        basis = compartments

        def evaluate(some: GradientPieces, chosen: Propagator | None) -> torch.Tensor:
            return coupled_signal(basis, some, propagator=chosen, **options)

    else:
        adapted = adapted_compartments(
            as_compartments(compartments), pieces, tolerance, memory_budget
        )

        def evaluate(some: GradientPieces, chosen: Propagator | None) -> torch.Tensor:
            return compartment_sum(adapted, some, propagator=chosen, **options)

    # b = 0 rows of b-values that carry gradients: their exact b-derivatives, by the
    # library's propagator (dense where derivatives at a zero waveform are needed)
    return with_zero_bvalue_derivatives(
        evaluate(pieces, propagator), acquisition, time_step, lambda some: evaluate(some, None)
    )


def compartment_sum(
    compartments: tuple[Compartment, ...],
    pieces: GradientPieces,
    *,
    normalize: bool = True,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    propagator: Propagator | None = None,
    factor_values: list[list[torch.Tensor]] | None = None,
) -> torch.Tensor:
    """The weighted sum of the compartments' signals (as :func:`signal`, for bases already
    at their cutoff), complex (M,); ``factor_values[c][k]``: the signal of factor k of
    compartment c when already computed (None: computed here)."""
    device = compartments[0].domain.free_axes.device
    echo_time = pieces.echo_time.to(device)
    total = torch.zeros(pieces.num_measurements, dtype=CDTYPE, device=device)
    weights, reference = compartment_weights(compartments, echo_time)
    for index, (compartment, weight) in enumerate(zip(compartments, weights)):
        attenuation = domain_signal(
            compartment.domain,
            compartment.diffusivity,
            pieces,
            max_chunk_bytes=max_chunk_bytes,
            propagator=propagator,
            factor_values=None if factor_values is None else factor_values[index],
        )
        total = total + weight * attenuation
    if normalize:
        if float(reference.detach()) <= 0:
            raise ValueError("every compartment has zero spin density: nothing to normalise")
        return total / reference
    return total


def adapted_compartments(
    compartments: tuple[Compartment, ...],
    pieces: GradientPieces,
    tolerance: float | None,
    memory_budget: float,
) -> tuple[Compartment, ...]:
    """The compartments with every factor that carries a source rebuilt at its standalone
    a-priori cutoff (:func:`mf_dmri.signal.cutoff.adapted_factor`); others unchanged."""
    factors = [f for c in compartments for f in c.domain.factors]
    share = default_tolerance(factors, tolerance) / max(len(factors), 1)
    result = []
    for compartment in compartments:
        if all(f.source is None for f in compartment.domain.factors):
            result.append(compartment)
            continue
        diffusivity = float(compartment.diffusivity.detach())
        adapted = tuple(
            f
            if f.source is None
            else adapted_factor(f, diffusivity, pieces, share, memory_budget, standalone=True)
            for f in compartment.domain.factors
        )
        domain = replace(compartment.domain, factors=adapted)
        result.append(replace(compartment, domain=domain))
    return tuple(result)
