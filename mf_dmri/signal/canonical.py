"""Waveforms of an isotropic basis in canonical form, and their distinct rows.

For an isotropic basis (analytic disk, ball) a waveform whose pieces are all parallel
gives the same signal as the same waveform rotated onto the first local axis, so such a
measurement is described by its gradient amplitudes along its own direction alone.
Measurements of one shell (same waveform and b-value, different directions) then share one
canonical waveform and are propagated once.
"""

from __future__ import annotations

import torch

#: Residual (relative to the largest gradient of the measurement) below which every piece
#: counts as parallel to the measurement's direction.
PARALLEL_RTOL = 1e-12

#: Canonical amplitudes that agree to this fraction of the largest amplitude are one
#: waveform: they differ only by the round-off of projecting the direction on the frame.
DISTINCT_RTOL = 1e-13


def hidden_directions(local: torch.Tensor) -> bool:
    """True when derivatives are taken with respect to the gradients and some measurement
    is zero in value (g = 0, b = 0): its direction then lives in the derivatives only, so
    nothing that is chosen from values (canonical direction, reachable subspace, parity)
    may be used for it; the full basis keeps its derivatives of every order exact.

    Args:
        local: (M, P, d) local-frame gradients of every measurement and piece [T/m].
    """
    if not local.requires_grad:
        return False
    return bool((local.detach().abs().amax(dim=(1, 2)) == 0).any())


def waveform_directions(local: torch.Tensor) -> torch.Tensor | None:
    """The unit direction n (M, d) of each measurement whose pieces are all parallel (the
    direction of its first largest piece; the first axis if every piece is zero), or None
    if some measurement has non-parallel pieces.  Computed from values (no autograd).

    Args:
        local: (M, P, d) local-frame gradients of every measurement and piece [T/m].
    """
    values = local.detach()
    norms = torch.linalg.vector_norm(values, dim=-1)  # (M, P)
    largest = torch.argmax(norms, dim=1)
    rows = torch.arange(values.shape[0], device=values.device)
    reference = values[rows, largest]  # (M, d)
    size = norms[rows, largest]
    empty = size == 0
    unit = reference / torch.where(empty, torch.ones_like(size), size)[:, None]
    unit[empty] = 0.0
    unit[empty, 0] = 1.0
    along = torch.einsum("mpd,md->mp", values, unit)
    residual = values - along[..., None] * unit[:, None, :]
    scale = values.abs().amax(dim=(1, 2))
    if bool((residual.abs().amax(dim=(1, 2)) > PARALLEL_RTOL * scale).any()):
        return None
    return unit


def canonical_gradients(local: torch.Tensor) -> torch.Tensor | None:
    """For waveforms whose pieces are all parallel (rank <= 1 per measurement), the local
    gradients rotated onto the first local axis, (M, P, d); None otherwise.

    The component along the measurement's direction n (``waveform_directions``) is g . n
    (no square root, so no NaN derivative at g = 0); for an isotropic basis the signal
    depends on nothing else, and its derivative with respect to the components
    perpendicular to n is zero.  So the derivatives of every order along the
    measurement's own direction (amplitude, timings) are exact, and first derivatives in
    every direction; None when a measurement's direction is hidden at g = 0
    (:func:`hidden_directions`).

    Args:
        local: (M, P, d) local-frame gradients of every measurement and piece [T/m].
    """
    unit = None if hidden_directions(local) else waveform_directions(local)
    if unit is None:
        return None
    canonical = torch.zeros_like(local)
    canonical[..., 0] = torch.einsum("mpd,md->mp", local, unit)
    return canonical


def distinct_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Indices of one representative per distinct row of ``rows`` (M, P) and the row of
    the representatives that each measurement uses, (M,); (all rows, None) when every row
    is distinct.  Rows that agree to ``DISTINCT_RTOL`` of the largest magnitude count as
    equal (the result differs at round-off only)."""
    values = rows.detach()
    scale = float(values.abs().max()) if values.numel() else 0.0
    if scale == 0.0:
        keys = torch.zeros_like(values, dtype=torch.int64)
    else:
        keys = torch.round(values / (DISTINCT_RTOL * scale)).to(torch.int64)
    _, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    if counts.numel() == values.shape[0]:
        return torch.arange(values.shape[0], device=values.device), None
    first = torch.full((counts.numel(),), values.shape[0], dtype=torch.long, device=values.device)
    positions = torch.arange(values.shape[0], device=values.device)
    representatives = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return representatives, inverse


def distinct_waveforms(
    local: torch.Tensor, canonical: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The distinct waveforms of ``local`` (M, P, d) [T/m] to round-off, and the one each
    measurement uses (``distinct_rows``); all of them when gradients are needed with
    respect to the gradients.  ``canonical``: compare the first axis only."""
    if local.requires_grad:
        return local, None
    rows = local[..., 0] if canonical else local.reshape(local.shape[0], -1)
    representatives, inverse = distinct_rows(rows)
    return (local, None) if inverse is None else (local[representatives], inverse)
