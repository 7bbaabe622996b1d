"""Fisher information and Cramer-Rao bounds of model parameters for a protocol.

For independent measurements with noise-free signals s_m(theta):

* Gaussian noise sigma: F = J^T J / sigma^2 (+ 2 M / sigma^2 for sigma itself);
* Rician noise: F = sum_m I_m(nu_m, sigma) pulled back through the Jacobian, with the
  per-measurement information I_m about (nu, sigma) from ``rician_information``.

The Cramer-Rao bound is the inverse of F: no unbiased estimator has a smaller covariance
(Cramer 1946; Rao 1945).  Computations run in scaled coordinates (each parameter divided by
its magnitude) so that inverting F is well conditioned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE
from mf_dmri.inverse.jacobian import jacobian
from mf_dmri.inverse.likelihood import check_likelihood, rician_information


def information_from_jacobian(
    jac: torch.Tensor,
    predicted: torch.Tensor,
    sigma: torch.Tensor | float,
    likelihood: str = "gaussian",
    *,
    include_sigma: bool = False,
) -> torch.Tensor:
    """Fisher information (F, F) of the Jacobian's columns, or (F+1, F+1) with sigma last.

    Args:
        jac: (M, F) derivatives of the signals [data units per column unit].
        predicted: (M,) noise-free signals [data units].
        sigma: noise standard deviation [data units].
        likelihood: "gaussian" or "rician".
        include_sigma: add sigma as the last parameter.
    """
    check_likelihood(likelihood)
    sigma = torch.as_tensor(sigma, dtype=DTYPE)
    count = predicted.numel()
    if likelihood == "gaussian":
        info = jac.T @ jac / sigma**2
        if not include_sigma:
            return info
        size = info.shape[0]
        full = torch.zeros(size + 1, size + 1, dtype=DTYPE)
        full = full.index_put((torch.arange(size)[:, None], torch.arange(size)[None]), info)
        return full.index_put((torch.tensor([size]), torch.tensor([size])), 2 * count / sigma**2)
    per = rician_information(predicted, sigma)  # (M, 2, 2)
    info = jac.T @ (per[:, 0, 0, None] * jac)
    if not include_sigma:
        return info
    cross = jac.T @ per[:, 0, 1]
    corner = per[:, 1, 1].sum()
    top = torch.cat([info, cross[:, None]], dim=1)
    bottom = torch.cat([cross, corner.reshape(1)])[None]
    return torch.cat([top, bottom], dim=0)


@dataclass(frozen=True)
class CramerRao:
    """Fisher information and Cramer-Rao bound of named parameters.

    Args:
        names: parameter names, in matrix order.
        values: the parameter values the bound is evaluated at [SI units].
        information: (F, F) Fisher information [1 / (unit_i unit_j)].
        covariance: (F, F) Cramer-Rao covariance bound [unit_i unit_j].
    """

    names: tuple[str, ...]
    values: tuple[float, ...]
    information: torch.Tensor
    covariance: torch.Tensor

    def standard_deviation(self, name: str) -> torch.Tensor:
        """Lower bound on the standard deviation of an unbiased estimate [its unit]."""
        i = self.names.index(name)
        return torch.sqrt(self.covariance[i, i])

    def relative(self, name: str) -> torch.Tensor:
        """``standard_deviation(name) / |value|`` [-]."""
        return self.standard_deviation(name) / abs(self.values[self.names.index(name)])


def _magnitudes(values: Mapping[str, float], names: Sequence[str]) -> list[float]:
    scales = []
    for name in names:
        value = abs(float(torch.as_tensor(values[name]).detach()))
        scales.append(value if value > 0 else 1.0)
    return scales


def cramer_rao_bound(
    model: Callable,
    values: Mapping[str, float | torch.Tensor],
    protocol,
    sigma: float | torch.Tensor,
    *,
    names: Sequence[str] | None = None,
    likelihood: str = "gaussian",
    include_sigma: bool = False,
    create_graph: bool = False,
) -> CramerRao:
    """Fisher information and Cramer-Rao bound of ``model`` at ``values`` for ``protocol``.

    Args:
        model: callable ``model(values, protocol) -> signals (M,)`` (e.g. ``CylinderModel``).
        values: every parameter of the model [SI units].
        protocol: the acquisition (anything ``mf_dmri.inverse.as_piece_groups`` accepts);
            its tensors may require grad (protocol design, with ``create_graph``).
        sigma: noise standard deviation [data units], positive.
        names: parameters treated as unknown (default: every key of ``values``); the others
            are known exactly.
        likelihood: "gaussian" or "rician" (magnitude data).
        include_sigma: treat sigma as unknown too (it becomes the last name, "sigma").
        create_graph: keep the graph for derivatives with respect to the protocol.

    Raises:
        ValueError: if the information matrix is singular (some combination of parameters
            does not change the signal: fix one, or change the protocol).
    """
    check_likelihood(likelihood)
    if not float(torch.as_tensor(sigma).detach()) > 0:
        raise ValueError("sigma must be positive [data units]")
    names = list(values) if names is None else list(names)
    scales = _magnitudes(values, names)
    predicted, jac = jacobian(
        lambda v: model(v, protocol), values, names, scales=scales, create_graph=create_graph
    )
    scaled = information_from_jacobian(
        jac, predicted, sigma, likelihood, include_sigma=include_sigma
    )
    if include_sigma:
        names = names + ["sigma"]
        scales = scales + [float(torch.as_tensor(sigma).detach())]
        # the sigma row/column is in physical units: rescale it like the others
        factor = torch.ones(len(names), dtype=DTYPE)
        factor[-1] = scales[-1]
        scaled = scaled * factor[:, None] * factor[None, :]
    eigenvalues = torch.linalg.eigvalsh(scaled.detach())
    if float(eigenvalues.min()) <= 1e-12 * float(eigenvalues.max().clamp(min=1e-300)):
        raise ValueError(
            f"the Fisher information of {names} is singular (condition > 1e12): some "
            "combination of these parameters does not change the signal for this protocol; "
            "fix one of them or add measurements that are sensitive to it"
        )
    s = torch.tensor(scales, dtype=DTYPE)
    covariance = torch.linalg.inv(scaled) * s[:, None] * s[None, :]
    information = scaled / (s[:, None] * s[None, :])
    plain = tuple(float(torch.as_tensor(values[n]).detach()) for n in names if n != "sigma")
    if include_sigma:
        plain = plain + (scales[-1],)
    return CramerRao(tuple(names), plain, information, covariance)


def fisher_information(
    model: Callable,
    values: Mapping[str, float | torch.Tensor],
    protocol,
    sigma: float | torch.Tensor,
    *,
    names: Sequence[str] | None = None,
    likelihood: str = "gaussian",
) -> torch.Tensor:
    """Fisher information matrix (F, F) of ``names`` [1 / (unit_i unit_j)]; arguments as in
    ``cramer_rao_bound``.  Unlike the bound it is returned even when singular."""
    check_likelihood(likelihood)
    names = list(values) if names is None else list(names)
    scales = _magnitudes(values, names)
    predicted, jac = jacobian(lambda v: model(v, protocol), values, names, scales=scales)
    scaled = information_from_jacobian(jac, predicted, sigma, likelihood)
    s = torch.tensor(scales, dtype=DTYPE)
    return scaled / (s[:, None] * s[None, :])
