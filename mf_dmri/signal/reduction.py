"""Exact reduction of an eigenbasis to the subspace a measurement can reach.

The magnetization starts as ``u`` (the mode integrals) and evolves under the diagonal
Lambda and the directional moment matrices Q_n of the gradient directions the waveform
uses.  It never leaves the smallest subspace that contains ``u`` and is invariant under
Lambda and every Q_n used.  Lambda-invariant subspaces are sums of subspaces of its
eigenspaces, so that subspace is built cluster by cluster (a block-Krylov iteration with
each new vector split into its components on the degenerate clusters of Lambda).

For shapes with symmetry the saving is large (a ball probed along one direction reaches
only the modes that are axially symmetric about it: about one mode per (l, k) pair instead
of 2l + 1); for a mesh without degeneracies nothing is gained and the basis is used as is.
The reduced basis V is computed from values (no autograd through V); first derivatives of
the signal through V^T Q V and Lambda are exact because the left and right propagated
states both lie in span(V) (Lambda and Q_n are symmetric), and so are derivatives of every
order along the span of the gradients used (the subspace is the same for every amplitude).
A zero waveform differentiated with respect to its gradients has no span in value
(``canonical.hidden_directions``): it gets the subspace reached from ``u`` by at most
``HIDDEN_ORDER`` applications of the moment matrices of every direction.  Its value is
exact (no gradient) and so are its derivatives at g = 0 of order <= ``HIDDEN_ORDER``: a
term of order k applies k moment matrices, interleaved with functions of Lambda, to ``u``,
and every intermediate state stays in that subspace.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from mf_dmri.eigenbasis import CLUSTER_RTOL
from mf_dmri.signal.canonical import hidden_directions


def eigenvalue_clusters(
    eigenvalues: torch.Tensor,
    rtol: float = CLUSTER_RTOL,
) -> list[torch.Tensor]:
    """Index tensors of the degenerate clusters of a sorted eigenvalue vector."""
    lam = eigenvalues.detach().cpu()
    scale = max(float(lam.abs().max()), 1e-300)
    breaks = torch.nonzero(lam[1:] - lam[:-1] > rtol * scale).flatten() + 1
    bounds = [0, *breaks.tolist(), lam.numel()]
    return [torch.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


#: Derivatives at g = 0 of a zero waveform with hidden direction are exact to this order.
HIDDEN_ORDER = 4


def reachable_subspace(
    eigenvalues: torch.Tensor,
    moments: list[torch.Tensor],
    start: torch.Tensor,
    tol: float = 1e-10,
    max_depth: int | None = None,
) -> torch.Tensor:
    """Orthonormal columns V (L x r) spanning the smallest subspace that contains ``start``
    and is invariant under diag(eigenvalues) and every matrix in ``moments``; each column
    lies in one eigenspace (so V^T diag(eigenvalues) V stays diagonal).  With
    ``max_depth``: only what at most ``max_depth`` applications of the moments reach (still
    invariant under diag(eigenvalues)); the search is breadth-first, so depths are minimal."""
    clusters = eigenvalue_clusters(eigenvalues)
    cluster_of = np.empty(eigenvalues.numel(), dtype=np.int64)
    for c, idx in enumerate(clusters):
        cluster_of[idx.numpy()] = c
    matrices = [q.detach().cpu().numpy() for q in moments]
    scale = max((float(np.abs(q).max()) for q in matrices), default=1.0) or 1.0
    columns: list[np.ndarray] = []
    basis = np.zeros((eigenvalues.numel(), 0))
    vector = start.detach().cpu().numpy().astype(np.float64)
    queue = deque([(vector, tol * float(np.abs(vector).max()), 0)])
    while queue:
        vector, threshold, depth = queue.popleft()
        # columns of different clusters have disjoint supports, so B B^T v removes from v
        # its component along every existing column, cluster by cluster
        for _ in range(2):
            vector = vector - basis @ (basis.T @ vector)
        norms = np.sqrt(np.bincount(cluster_of, weights=vector**2, minlength=len(clusters)))
        new = []
        for c in np.nonzero(norms > threshold)[0]:
            column = np.where(cluster_of == c, vector, 0.0) / norms[c]
            new.append(column)
        if not new:
            continue
        columns.extend(new)
        basis = np.column_stack(columns)
        if max_depth is not None and depth >= max_depth:
            continue
        for column in new:
            for q in matrices:
                queue.append((q @ column, tol * scale, depth + 1))
    first = [int(np.nonzero(c)[0][0]) for c in columns]
    order = np.argsort(first, kind="stable")
    return torch.from_numpy(basis[:, order])


def _span_key(vectors: torch.Tensor) -> tuple[tuple[float, ...], torch.Tensor]:
    """Orthonormal basis of the span of ``vectors`` (rows) and a hashable key for it."""
    _, singular, right = torch.linalg.svd(vectors, full_matrices=False)
    rank = int((singular > 1e-12 * max(float(singular.max()), 1e-300)).sum())
    span = right[:rank]
    projector = span.T @ span
    return tuple(torch.round(projector.flatten(), decimals=10).tolist()), span


#: Reduce only when the reachable subspaces are at most this fraction of the basis.
REDUCTION_GAIN = 0.75


def reduced_data(basis, local: torch.Tensor, subspaces: dict | None = None):
    """Per-measurement reduced (eigenvalues (M, r), moments (M, d, r, r), integrals (M, r)),
    zero-padded to a common size r, or None when reduction would not save work.

    ``local`` (M, P, d) holds the local-frame gradients of every measurement and piece.
    ``subspaces``, if given, memoises the reachable subspace of each span of gradient
    directions: pass the same dict for every call on the same ``basis``."""
    hidden = hidden_directions(local)
    if not _worth_searching(basis.eigenvalues, hidden):
        return None
    values = local.detach().cpu()
    groups: dict[tuple, list[int]] = {}
    spans: dict[tuple, torch.Tensor] = {}
    for m in range(values.shape[0]):
        if not bool(values[m].any()):
            key, span = (), torch.zeros(0, values.shape[-1], dtype=values.dtype)
            if hidden:  # every direction, to order HIDDEN_ORDER (module docstring)
                key, span = ("hidden",), torch.eye(values.shape[-1], dtype=values.dtype)
        else:
            key, span = _span_key(values[m])
            if span.shape[0] == basis.dimension:
                return None  # full-rank waveforms reach (almost) everything: no gain
        groups.setdefault(key, []).append(m)
        spans[key] = span
    moments = basis.moments.detach().cpu()
    subspaces = {} if subspaces is None else subspaces
    for key, span in spans.items():
        if key not in subspaces:
            directional = [torch.einsum("k,kij->ij", s, moments) for s in span]
            depth = HIDDEN_ORDER if key == ("hidden",) else None
            subspaces[key] = reachable_subspace(
                basis.eigenvalues, directional, basis.mode_integrals, max_depth=depth
            )
    size = max(subspaces[key].shape[1] for key in spans)
    if size > REDUCTION_GAIN * basis.num_modes:
        return None
    return _stack_reduced(basis, groups, subspaces, size, values.shape[0])


def _worth_searching(eigenvalues: torch.Tensor, hidden: bool) -> bool:
    """Whether the degenerate clusters could make the reachable subspaces small enough.

    The search drops modes only inside degenerate clusters (a simple eigenvalue's mode is
    reached in practice), keeping at least one column per cluster, so it saves at most
    ``sum(size - 1)`` modes.  Below ``1 - REDUCTION_GAIN`` of the basis the reduction
    cannot pay, and the search (one per span of gradient directions: about 0.6 s per
    measurement on a 927-mode mesh basis of four pieces, whose only degenerate cluster is
    the four zero modes) is skipped; the full basis is exact.  A zero waveform with hidden
    directions searches only to ``HIDDEN_ORDER``, which can stop short of simple modes, so
    it is always searched."""
    if hidden:
        return True
    sizes = [cluster.numel() for cluster in eigenvalue_clusters(eigenvalues)]
    return sum(size - 1 for size in sizes) >= (1 - REDUCTION_GAIN) * eigenvalues.numel()


def _stack_reduced(basis, groups, subspaces, size, count):
    device, dim = basis.device, basis.dimension
    eigenvalues = basis.eigenvalues.new_zeros(count, size)
    moments = basis.moments.new_zeros(count, dim, size, size)
    integrals = basis.mode_integrals.new_zeros(count, size)
    for key, members in groups.items():
        v = subspaces[key].to(device=device, dtype=basis.moments.dtype)
        r = v.shape[1]
        index = torch.tensor(members, device=device)
        # each column of v lies in one eigenspace: its Rayleigh quotient is that eigenvalue
        lam = ((v * v) * basis.eigenvalues[:, None]).sum(0)
        eigenvalues[index, :r] = lam
        moments[index, :, :r, :r] = torch.einsum("ia,kij,jb->kab", v, basis.moments, v)
        integrals[index, :r] = basis.mode_integrals @ v
    return eigenvalues, moments, integrals
