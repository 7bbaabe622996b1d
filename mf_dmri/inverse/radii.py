"""Gamma-distributed radii: volume-weighted quadrature nodes that are differentiable in the
distribution's mean and shape.

Number density of radii p(r) = r^(k-1) exp(-r / theta) / (Gamma(k) theta^k), mean k theta.
The signal of a bundle weights each axon by its volume (r^2 per unit length), so

    E = int r^2 p(r) E(r) dr / int r^2 p(r) dr = E_{x ~ Gamma(k + 2, 1)}[E(theta x)],

an average over x with density x^(k+1) e^-x / Gamma(k + 2), evaluated by generalised
Gauss-Laguerre quadrature with alpha = k + 1.  Nodes and weights come from the Golub-Welsch
eigenproblem of the Jacobi matrix (diagonal 2 i + alpha + 1, off-diagonal
sqrt(i (i + alpha)); Golub and Welsch 1969, Math. Comp. 23, 221) solved with
``torch.linalg.eigh``, so they are differentiable in k: derivatives are exact derivatives
of the quadrature value (consistent with the objective the optimiser sees).
"""

from __future__ import annotations

import torch

from mf_dmri._checks import DTYPE


def generalized_laguerre(count: int, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(nodes (count,), weights (count,) summing to 1) of the Gauss rule for the weight
    x^alpha e^-x on (0, inf), differentiable in ``alpha`` (> -1)."""
    index = torch.arange(count, dtype=DTYPE)
    diagonal = 2 * index + alpha + 1
    upper = torch.sqrt(index[1:] * (index[1:] + alpha))
    jacobi = torch.diag(diagonal) + torch.diag(upper, 1) + torch.diag(upper, -1)
    nodes, vectors = torch.linalg.eigh(jacobi)
    return nodes, vectors[0] ** 2


def gamma_volume_nodes(
    mean_radius: torch.Tensor, shape: torch.Tensor, count: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """(radii (count,) [m], weights (count,) [-]) of the volume-weighted gamma average.

    Args:
        mean_radius: mean radius k theta of the number distribution [m].
        shape: gamma shape parameter k [-] (larger is narrower; CV = 1/sqrt(k)).
        count: number of quadrature nodes.
    """
    if not (isinstance(count, int) and count >= 1):
        raise ValueError("count must be a positive integer")
    mean_radius = torch.as_tensor(mean_radius, dtype=DTYPE)
    shape = torch.as_tensor(shape, dtype=DTYPE)
    if float(mean_radius.detach()) <= 0 or float(shape.detach()) <= 0:
        raise ValueError("mean_radius [m] and shape [-] of the gamma distribution must be positive")
    nodes, weights = generalized_laguerre(count, shape + 1.0)
    return mean_radius / shape * nodes, weights
