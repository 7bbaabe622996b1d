"""Fast compartment signals for the parametric models, exact and differentiable.

For a waveform whose gradient keeps one direction during a measurement (PGSE, OGSE,
trapezoids: g_p = a_p n), the signal of a cylinder depends on the gradient only through the
amplitude of its component perpendicular to the axis, a_p |n_perp|, and along the axis,
and the signal of a sphere only through a_p.  Rotating each measurement so that its
gradient lies along one fixed local axis makes every measurement share one reachable
subspace of the eigenbasis (``mf_dmri.signal.reduction``), which is much cheaper than
propagating in the full basis with a different direction per measurement.  Waveforms
whose direction changes (double PGSE with two directions) fall back to the general path
``mf_dmri.signal.domain_signal``: same result, slower.

The reachable subspace of the unit disk (unit ball) under a gradient along local x is
computed once per cutoff and cached; scaling to a radius R multiplies the eigenvalues by
1/R^2 and the moments by R (the normalised signal does not depend on the scaling of the
mode integrals and the volume, which cancel).

Hindered compartments (zeppelin, ball, stick) use the exact b-tensor of the waveform:
E = exp(-B : D_tensor).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from mf_dmri._checks import DTYPE
from mf_dmri.analytic import DEFAULT_CUTOFF, ball_basis, cylinder, disk_basis, sphere
from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.plausibility import UNCHECKED
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal import domain_signal, factor_signal
from mf_dmri.signal.reduction import reachable_subspace

#: Relative tolerance for "the gradient of a measurement keeps one direction".
COLLINEAR_RTOL = 1e-10
_Z_AXIS = (0.0, 0.0, 1.0)

#: Fitted parameters roam their bounds (the inverse layer checks those): no range checks
#: while evaluating the models, and unit-size bases are scaled.
FIT = UNCHECKED


def unit_axis(axis: torch.Tensor) -> torch.Tensor:
    """``axis`` (3,) normalised to unit length [-] (differentiable)."""
    norm = torch.linalg.vector_norm(axis)
    if float(norm.detach()) == 0.0:
        raise ValueError("axis must be a non-zero vector; give the fibre direction")
    return axis / norm


def signed_amplitudes(pieces: GradientPieces) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(amplitudes (M, P) [T/m], directions (M, 3) [-]) with gradients = a_p n, or None if
    some measurement changes gradient direction.  Measurements without gradient get a = 0."""
    grads = pieces.gradients
    norms = torch.linalg.vector_norm(grads.detach(), dim=-1)  # (M, P)
    reference = norms.argmax(dim=1)
    ref = grads[torch.arange(grads.shape[0]), reference]  # (M, 3)
    silent = (norms.max(dim=1).values == 0)[:, None]
    safe_ref = torch.where(silent, torch.ones_like(ref), ref)
    # differentiable norm: for g_p = a_p n the direction n has zero derivative
    unit = safe_ref / torch.linalg.vector_norm(safe_ref, dim=-1, keepdim=True)
    directions = torch.where(silent, torch.zeros_like(ref), unit)
    amplitudes = torch.einsum("mpk,mk->mp", grads, directions)
    residual = grads.detach() - amplitudes.detach()[..., None] * directions.detach()[:, None]
    scale = max(float(norms.max()), 1e-300)
    if float(torch.linalg.vector_norm(residual, dim=-1).max()) > COLLINEAR_RTOL * scale:
        return None
    return amplitudes, directions


def _canonical_pieces(pieces: GradientPieces, amplitudes: torch.Tensor) -> GradientPieces:
    """The same timing with the signed ``amplitudes`` (M, P) along the lab x axis."""
    zeros = torch.zeros_like(amplitudes)
    gradients = torch.stack([amplitudes, zeros, zeros], dim=-1)
    return GradientPieces(pieces.durations, gradients, pieces.gyromagnetic_ratio)


def _safe_sqrt(value: torch.Tensor) -> torch.Tensor:
    """sqrt with a finite (zero) derivative at 0: the signals below are even in it."""
    tiny = torch.finfo(value.dtype).tiny
    return torch.sqrt(torch.clamp(value, min=tiny))


@lru_cache(maxsize=32)
def _reduced_unit(shape: str, unit_cutoff: float) -> tuple[torch.Tensor, ...]:
    """(eigenvalues (r,), moment along x (r, r), mode integrals (r,), volume) of the unit
    disk or ball restricted to the subspace reachable with gradients along x."""
    if shape == "disk":
        basis = disk_basis(1.0, _Z_AXIS, max_eigenvalue=unit_cutoff, plausibility=UNCHECKED)
    else:
        basis = ball_basis(1.0, max_eigenvalue=unit_cutoff, plausibility=UNCHECKED)
    moment = basis.directional_moment(torch.tensor([1.0, 0.0, 0.0], dtype=DTYPE))
    columns = reachable_subspace(basis.eigenvalues, [moment], basis.mode_integrals)
    eigenvalues = ((columns * columns) * basis.eigenvalues[:, None]).sum(0)
    order = torch.argsort(eigenvalues, stable=True)
    columns, eigenvalues = columns[:, order], eigenvalues[order]
    reduced = columns.T @ moment @ columns
    return eigenvalues, 0.5 * (reduced + reduced.T), basis.mode_integrals @ columns, basis.volume


def restricted_signal(
    shape: str,
    pieces: GradientPieces,
    amplitudes: torch.Tensor,
    radius: torch.Tensor,
    diffusivity: torch.Tensor,
    unit_cutoff: float,
) -> torch.Tensor:
    """Normalised complex signal (M,) of a disk or ball of ``radius`` [m] for gradients of
    signed ``amplitudes`` (M, P) [T/m] along one fixed direction, with the timing of
    ``pieces``."""
    eigenvalues, moment, integrals, volume = _reduced_unit(shape, round(float(unit_cutoff), 9))
    basis = Eigenbasis(
        eigenvalues / radius**2,
        (moment * radius)[None],
        integrals,
        volume,
        torch.tensor([[1.0, 0.0, 0.0]], dtype=DTYPE),
        label=f"reduced unit {shape}",
    )
    return factor_signal(basis, diffusivity, _canonical_pieces(pieces, amplitudes), reduce=False)


def _check_cutoff(unit_cutoff: float) -> None:
    if not unit_cutoff > 0:
        raise ValueError("unit_cutoff must be positive [-]")


def cylinder_signal(
    pieces: GradientPieces,
    radius: torch.Tensor,
    axis: torch.Tensor,
    diffusivity: torch.Tensor,
    *,
    unit_cutoff: float = DEFAULT_CUTOFF["disk"],
) -> torch.Tensor:
    """Normalised signal of an impermeable infinite cylinder, real (M,).

    Args:
        pieces: the acquisition's gradients.
        radius: cylinder radius [m].
        axis: (3,) cylinder axis [-] (normalised here).
        diffusivity: intra-cylinder diffusivity [m^2/s].
        unit_cutoff: modes kept: eigenvalue <= unit_cutoff / radius^2 [-]; a fixed number
            of modes for every radius, so the signal is smooth in the radius.
    """
    _check_cutoff(unit_cutoff)
    axis = unit_axis(axis)
    split = signed_amplitudes(pieces)
    if split is None:
        max_eigenvalue = unit_cutoff / float(radius.detach()) ** 2
        domain = cylinder(radius, axis, max_eigenvalue=max_eigenvalue, plausibility=FIT)
        return domain_signal(domain, diffusivity, pieces).real
    amplitudes, directions = split
    along = directions @ axis  # (M,)
    perpendicular = _safe_sqrt(1.0 - along**2)
    transverse = restricted_signal(
        "disk", pieces, amplitudes * perpendicular[:, None], radius, diffusivity, unit_cutoff
    )
    parallel = torch.einsum("a,mab,b->m", axis, pieces.btensors(), axis)
    return transverse.real * torch.exp(-diffusivity * parallel)


def sphere_signal(
    pieces: GradientPieces,
    radius: torch.Tensor,
    diffusivity: torch.Tensor,
    *,
    unit_cutoff: float = DEFAULT_CUTOFF["ball"],
) -> torch.Tensor:
    """Normalised signal of an impermeable sphere, real (M,).

    Args:
        pieces: the acquisition's gradients.
        radius: sphere radius [m].
        diffusivity: intra-sphere diffusivity [m^2/s].
        unit_cutoff: modes kept: eigenvalue <= unit_cutoff / radius^2 [-].
    """
    _check_cutoff(unit_cutoff)
    split = signed_amplitudes(pieces)
    if split is None:
        max_eigenvalue = unit_cutoff / float(radius.detach()) ** 2
        domain = sphere(radius, max_eigenvalue=max_eigenvalue, plausibility=FIT)
        return domain_signal(domain, diffusivity, pieces).real
    amplitudes, _ = split
    return restricted_signal("ball", pieces, amplitudes, radius, diffusivity, unit_cutoff).real


def zeppelin_signal(
    pieces: GradientPieces,
    axis: torch.Tensor,
    parallel_diffusivity: torch.Tensor,
    perpendicular_diffusivity: torch.Tensor,
) -> torch.Tensor:
    """Axially symmetric Gaussian diffusion exp(-B : D), real (M,).

    Args:
        pieces: the acquisition's gradients (exact b-tensors B [s/m^2]).
        axis: (3,) symmetry axis [-] (normalised here).
        parallel_diffusivity: diffusivity along the axis [m^2/s].
        perpendicular_diffusivity: diffusivity across the axis [m^2/s] (0 gives a stick).
    """
    axis = unit_axis(axis)
    btensors = pieces.btensors()
    trace = btensors.diagonal(dim1=-2, dim2=-1).sum(-1)
    along = torch.einsum("a,mab,b->m", axis, btensors, axis)
    exponent = perpendicular_diffusivity * (trace - along) + parallel_diffusivity * along
    return torch.exp(-exponent)


def ball_signal(pieces: GradientPieces, diffusivity: torch.Tensor) -> torch.Tensor:
    """Isotropic free diffusion exp(-D b), real (M,); ``diffusivity`` [m^2/s]."""
    return torch.exp(-diffusivity * pieces.bvalues().to(DTYPE))
