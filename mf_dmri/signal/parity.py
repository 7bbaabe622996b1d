"""Real-arithmetic propagation for reflection-symmetric factors.

If the modes split into two classes (parity p = +1 / -1) such that the moment matrix of
every gradient direction used only couples modes of opposite parity, and the initial state
lies in the +1 class, then with S = diag(1 for p = +1, i for p = -1)

    S^-1 (D Lambda + i gamma g.Q) S = D Lambda + gamma g.J,   J_jk = Q_jk (p_k - p_j) / 2,

is real, so every propagator exp(-tau A) = S exp(-tau (D Lambda + gamma g.J)) S^-1 is
computed by a real matrix exponential (about 2-3x faster than a complex one), and the
refocused lobe exp(-tau conj(A)) becomes diag(p) exp(...) diag(p).  This holds exactly for
a domain symmetric under the reflection x -> x - 2 (x.n) n of each gradient direction n
(interval, disk, ball, and their reduced bases): x.n is odd, so it only couples modes of
opposite reflection parity.  The classes are found by a breadth-first 2-colouring of the
coupling graph and then verified on the values; a basis without the symmetry (a generic
mesh) fails the check and is propagated in complex arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch

from mf_dmri.signal.canonical import hidden_directions, waveform_directions

#: Entries of a moment matrix below this fraction of its largest entry count as zero.
PARITY_RTOL = 1e-14


def bipartite_parity(
    phase: torch.Tensor, start: torch.Tensor, rtol: float = PARITY_RTOL
) -> torch.Tensor | None:
    """Parity (L,) of +1/-1 such that ``phase`` (L, L) couples only opposite parities and
    ``start`` (L,) vanishes on the -1 class (both up to ``rtol`` relative), or None."""
    q = phase.detach().cpu().numpy()
    u = start.detach().cpu().numpy()
    scale = float(np.abs(q).max())
    if scale == 0.0:
        return None
    adjacency = np.abs(q) > rtol * scale
    parity = np.zeros(q.shape[0])
    support = np.abs(u) > rtol * float(np.abs(u).max() or 1.0)
    parity[support] = 1.0
    frontier = support
    while True:
        if not frontier.any():
            uncolored = np.nonzero(parity == 0)[0]
            if uncolored.size == 0:
                break
            frontier = np.zeros_like(support)
            frontier[uncolored[0]] = True  # a component the start does not reach
            parity[uncolored[0]] = 1.0
        plus = adjacency[frontier & (parity > 0)].any(0)
        minus = adjacency[frontier & (parity < 0)].any(0)
        new = (parity == 0) & (plus | minus)
        parity[new & plus] = -1.0
        parity[new & ~plus] = 1.0
        frontier = new
    same = parity[:, None] == parity[None, :]
    if bool(adjacency[same].any()) or bool(support[parity < 0].any()):
        return None
    return torch.from_numpy(parity)


def row_parities(
    moments: torch.Tensor, integrals: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor | None:
    """Parity of every row (W, L) for moments (W or 1, d, L, L), integrals (W or 1, L) and
    one gradient direction per row (W, d); None if any row lacks the symmetry."""
    rows = []
    for w in range(directions.shape[0]):
        q = moments[w if moments.shape[0] > 1 else 0]
        u = integrals[w if integrals.shape[0] > 1 else 0]
        parity = bipartite_parity(torch.einsum("k,kij->ij", directions[w], q.detach()), u)
        if parity is None:
            return None
        rows.append(parity)
    if all(torch.equal(rows[0], p) for p in rows[1:]):
        return rows[0][None].to(moments.device)
    return torch.stack(rows).to(moments.device)


def real_moments(moments: torch.Tensor, parity: torch.Tensor) -> torch.Tensor:
    """J = S^-1 (i Q) S for every moment matrix, (B, d, L, L) from (B, d, L, L), (B, L)."""
    sign = (parity[..., None, :] - parity[..., :, None]) / 2
    return moments * sign[:, None]


def similarity(parity: torch.Tensor) -> torch.Tensor:
    """The diagonal of S: 1 where parity is +1, i where it is -1, complex (B, L)."""
    one = torch.ones_like(parity)
    return torch.complex(
        torch.where(parity > 0, one, 0 * one), torch.where(parity > 0, 0 * one, one)
    )


def plan_parity(
    local: torch.Tensor, data: tuple, coupling: torch.Tensor | None
) -> torch.Tensor | None:
    """Parity (W or 1, L) of each waveform of a factor plan (``local`` (W, P, d) [T/m],
    eigen-data ``data``), or None: with a coupling, when the eigen-data need gradients (the
    entries the symmetry zeroes would lose theirs), when a direction is hidden at g = 0
    (``canonical.hidden_directions``), or without the symmetry."""
    if coupling is not None or data[1].requires_grad or data[2].requires_grad:
        return None
    if hidden_directions(local):
        return None
    directions = waveform_directions(local)
    if directions is None:
        return None
    # waveforms along one direction share their reduced eigen-data (the reduction depends
    # on the span of the gradients only): check each direction once.  A zero waveform only
    # decays (diagonal propagators commute with S), so any parity is exact for it.
    active = torch.nonzero(local.detach().abs().amax(dim=(1, 2)) > 0).flatten()
    if active.numel() == 0:
        return None
    unique, inverse = torch.unique(directions[active], dim=0, return_inverse=True)
    first = torch.full((unique.shape[0],), local.shape[0], device=local.device)
    first = first.scatter_reduce(0, inverse, active, reduce="amin")
    moments, integrals = (x if x.shape[0] == 1 else x[first] for x in data[1:])
    parity = row_parities(moments, integrals, unique)
    if parity is None or parity.shape[0] == 1:
        return parity
    rows = parity[:1].expand(local.shape[0], -1).clone()
    rows[active] = parity[inverse]
    return rows
