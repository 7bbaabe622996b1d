"""Gamma-distributed radii: volume-weighted quadrature nodes that are differentiable in the
distribution's mean and shape.

Number density of radii p(r) = r^(k-1) exp(-r / theta) / (Gamma(k) theta^k), mean k theta.
The signal of a bundle weights each axon by its volume (r^2 per unit length), so

    E = int r^2 p(r) E(r) dr / int r^2 p(r) dr = E_{x ~ Gamma(k + 2, 1)}[E(theta x)],

an average over x with density x^(k+1) e^-x / Gamma(k + 2), evaluated by generalised
Gauss-Laguerre quadrature with alpha = k + 1 (Golub-Welsch nodes from scipy).  The nodes are
computed for the current shape k0 and held fixed; the weights carry the exact dependence on
k through the density ratio w_i(k) = w_i exp((k - k0) log x_i - lnGamma(k + 2) +
lnGamma(k0 + 2)), which equals w_i at k = k0.  Its derivatives in k are those of the
integral (the score-function identity), approximated by the same quadrature, so first and
second derivatives are consistent with the model, not with the node positions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.special import roots_genlaguerre

from mf_dmri._checks import DTYPE


@lru_cache(maxsize=64)
def _laguerre(count: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = roots_genlaguerre(count, alpha)
    return nodes, weights / weights.sum()


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
    if float(mean_radius.detach()) <= 0 or float(shape.detach()) <= 0:
        raise ValueError("mean_radius [m] and shape [-] of the gamma distribution must be positive")
    reference = float(shape.detach())
    nodes, weights = _laguerre(count, round(reference + 1.0, 12))
    x = torch.as_tensor(nodes, dtype=DTYPE)
    w = torch.as_tensor(weights, dtype=DTYPE)
    log_ratio = (shape - reference) * torch.log(x) - (
        torch.lgamma(shape + 2.0) - torch.lgamma(torch.tensor(reference + 2.0, dtype=DTYPE))
    )
    scale = mean_radius / shape
    return scale * x, w * torch.exp(log_ratio)
