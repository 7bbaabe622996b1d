"""The finite-element (discretisation) error of a mesh factor's signal, P1 versus P2.

A mesh basis of order p carries its mesh (:class:`~mf_dmri.fem.discretisation.
FemDiscretisation`).  Its discretisation error is bounded from the *companion*, the same
mesh solved with the other order q at the same cutoff (the same polyhedron, so the bound is
on the finite-element error alone):

    D = |E_p - E_q|,   rho = sum_i w_i |lambda_p,i - lambda_q,i| / min(lambda_p,i, lambda_q,i),

rho the relative change of the eigenvalues between the orders (the measured relative P1
eigenvalue error), averaged with the weights w_i (sum 1) of the modes in the signal at low
q (:func:`eigenvalue_change`).  For smooth eigenfunctions the P1 and P2
eigenvalue errors are e_1 ~ C_1 h^2 lambda and e_2 ~ C_2 (h^2 lambda)^2 relative to
lambda (Babuska and Osborn 1991, Thm 10.4), so e_2 / e_1 ~ c rho with c = C_2 / C_1^2:
0.2 in 1-D ((1/720) / (1/12)^2), measured 0.5 to 0.75 on the coarse sphere and hexagon
meshes of tests/test_discretisation_error.py; the bound takes c = 2 (RATIO_CONSTANT).
With r = c rho, e_2 <= r e_1 and D >= e_1 - e_2:

* a P1 basis (the companion is the more accurate): ``e_1 <= D / (1 - r)``;
* a P2 basis: ``e_2 <= r D / (1 - r)``,

with r capped at 1/2 (beyond, the mesh is too coarse for the cutoff and the bound falls
back to D for P2 and 2 D for P1).  The signals are compared at the accepted cutoff, so D
also holds the (smaller) difference of their truncation errors.  Measured against
converged references in validation/coverage_study.md (mesh cases).

Not covered: how well the polyhedron approximates a curved cell (its volume and area
errors are reported with the mesh, :mod:`mf_dmri.geometry.quality`).
"""

from __future__ import annotations

import warnings

import torch

from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.cutoff import _ANALYTIC_LABELS
from mf_dmri.signal.propagation import factor_signal
from mf_dmri.signal.propagators import Propagator


class DiscretisationWarning(UserWarning):
    """A basis that is not a closed form carries no mesh: its finite-element error is not
    in the error bar."""


#: c in e_2 / e_1 <= c rho (see the module docstring).
RATIO_CONSTANT = 2.0
#: Cap of r = c rho in the bound (see the module docstring).
MAX_ERROR_RATIO = 0.5


def eigenvalue_change(basis: Eigenbasis, companion: Eigenbasis) -> float:
    """rho: the relative change of the non-zero eigenvalues between the two bases
    (matched in ascending order over the modes both hold) [-], averaged with the weight of
    each mode in the signal at low q: w_i = sum_k (u^T Q_k)_i^2, u the uniform initial
    magnetisation (mode_integrals / sqrt(volume)), Q_k the moments of ``basis``."""
    count = min(basis.num_modes, companion.num_modes)
    first = basis.eigenvalues.detach()[:count].cpu()
    second = companion.eigenvalues.detach()[:count].cpu()
    lower = torch.minimum(first, second)
    nonzero = lower > 1e-9 * float(torch.maximum(first[-1], second[-1]))
    start = basis.mode_integrals.detach().cpu() / torch.sqrt(basis.volume.detach().cpu())
    coupling = torch.einsum("i,kij->kj", start, basis.moments.detach().cpu())[:, :count]
    weights = (coupling**2).sum(dim=0) * nonzero
    total = float(weights.sum())
    if total == 0.0:
        return 0.0
    change = torch.where(nonzero, (first - second).abs() / torch.where(nonzero, lower, 1.0), 0.0)
    return float((weights * change).sum()) / total


def discretisation_error(
    factor: Eigenbasis,
    accepted: Eigenbasis,
    diffusivity: float,
    pieces: GradientPieces,
    value: torch.Tensor | None = None,
    propagator: Propagator | None = None,
) -> torch.Tensor:
    """float64 (M,) bound of the finite-element error of the signal of ``accepted`` (the
    factor at its accepted cutoff) [signal unit]: zero for a factor without a mesh (closed
    forms), else the P1-versus-P2 bound of the module docstring.  ``diffusivity`` [m^2/s].
    ``value``: the signal of ``accepted`` (M,) when already computed (else computed here);
    ``propagator``: the one used for both orders (None: chosen by measured cost, as in
    :func:`~mf_dmri.signal.api.signal`).  A basis that is neither a closed form nor carries
    its mesh gets zero with a :class:`DiscretisationWarning` (the bar then does not cover
    its discretisation)."""
    model = factor.discretisation
    if model is None:
        if factor.source is None and factor.label not in _ANALYTIC_LABELS:
            warnings.warn(
                f"the basis {factor.label or '(unlabelled)'} is not a closed form and carries "
                "no mesh (Eigenbasis.discretisation), so its finite-element error is not in "
                "the error bar; build it with mf_dmri.fem.mesh_eigenbasis or "
                "cross_section_eigenbasis to include it",
                DiscretisationWarning,
                stacklevel=4,
            )
        return torch.zeros(pieces.num_measurements, dtype=torch.float64, device=accepted.device)
    cutoff = float(accepted.eigenvalues.detach()[-1])
    companion = model.companion(cutoff, accepted.axes.detach().cpu()).to(accepted.device)
    rate = torch.tensor(float(diffusivity), dtype=torch.float64, device=accepted.device)
    with torch.no_grad():
        if value is None:
            value = factor_signal(accepted, rate, pieces, propagator=propagator)
        other = factor_signal(companion, rate, pieces, propagator=propagator)
    change = (value.detach() - other).abs()
    ratio = min(RATIO_CONSTANT * eigenvalue_change(accepted, companion), MAX_ERROR_RATIO)
    if model.order == 1:
        return change / (1.0 - ratio)
    return change * (ratio / (1.0 - ratio))
