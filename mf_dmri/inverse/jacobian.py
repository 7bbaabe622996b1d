"""Jacobians of forward models with respect to their named parameters.

Computed in reverse mode: with g(u) = J^T u built with ``create_graph``, column i of J is
d g_i / d u.  The result is itself differentiable (with respect to the protocol, for
design), and costs one forward pass, one backward pass and one double-backward pass per
parameter.  This needs every operation to be twice differentiable; a custom autograd
function with a first-order-only backward (the mesh eigen-solver of ``mf_dmri.fem``) would
silently drop terms, so the result is checked against one plain reverse pass, J^T w for
random w, and on mismatch the Jacobian is recomputed row by row (M first-order reverse
passes: exact, slower).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import torch

from mf_dmri._checks import DTYPE

logger = logging.getLogger(__name__)

#: Relative mismatch of J^T w above which the double-backward Jacobian is rejected.
CONSISTENCY_RTOL = 1e-7

ForwardModel = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def evaluate(forward: ForwardModel, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Run ``forward`` and check that it returns a finite real (M,) tensor."""
    predicted = forward(values)
    if not isinstance(predicted, torch.Tensor):
        raise TypeError(f"the forward model must return a torch tensor, got {type(predicted)}")
    if predicted.is_complex():
        raise TypeError(
            "the forward model returned complex signals: return .real (refocused waveforms) "
            "or .abs() (magnitude) of the signal"
        )
    if predicted.ndim != 1:
        raise ValueError(f"the forward model must return shape (M,), got {tuple(predicted.shape)}")
    if not bool(torch.isfinite(predicted.detach()).all()):
        raise FloatingPointError(
            f"the forward model returned NaN or inf at {_describe(values)}; check the bounds "
            "of the parameters (e.g. a zero radius or diffusivity)"
        )
    return predicted


def _describe(values: Mapping[str, torch.Tensor]) -> str:
    return ", ".join(f"{k}={float(torch.as_tensor(v).detach()):.4g}" for k, v in values.items())


def jacobian(
    forward: ForwardModel,
    values: Mapping[str, torch.Tensor | float],
    names: Sequence[str],
    *,
    scales: Sequence[float] | None = None,
    create_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(signals (M,), Jacobian (M, len(names))) of ``forward`` at ``values``.

    Args:
        forward: the forward model (dict of physical parameters -> signals (M,)).
        values: every parameter the model needs [SI units].
        names: the parameters to differentiate with respect to.
        scales: optional multipliers: column i is d signal / d (value_i / scale_i), i.e.
            the derivative times scale_i [signal units]; default 1.
        create_graph: keep the graph so the Jacobian can be differentiated further (e.g.
            with respect to protocol tensors the model closes over).
    """
    names = list(names)
    scales = [1.0] * len(names) if scales is None else list(scales)
    if len(scales) != len(names):
        raise ValueError("scales must have one entry per name")
    missing = [n for n in names if n not in values]
    if missing:
        raise KeyError(f"no value given for {missing}")
    offsets = torch.zeros(len(names), dtype=DTYPE, requires_grad=True)
    inputs = {k: torch.as_tensor(v, dtype=DTYPE) for k, v in values.items()}
    for i, name in enumerate(names):
        inputs[name] = inputs[name] + scales[i] * offsets[i]
    predicted = evaluate(forward, inputs)
    probe = torch.zeros_like(predicted, requires_grad=True)
    (transposed,) = torch.autograd.grad(
        predicted, offsets, grad_outputs=probe, create_graph=True, allow_unused=True
    )
    columns = []
    for i in range(len(names)):
        column = None
        if transposed is not None and transposed[i].requires_grad:
            (column,) = torch.autograd.grad(
                transposed[i],
                probe,
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
            )
        columns.append(torch.zeros_like(predicted.detach()) if column is None else column)
    jac = torch.stack(columns, dim=1)
    if not _consistent(predicted, offsets, jac):
        if create_graph:
            raise RuntimeError(
                "the forward model is not twice differentiable (e.g. the finite-element "
                "eigen-solver has a first-order backward only), so its Jacobian cannot be "
                "differentiated further; protocol design needs an analytic model"
            )
        logger.info("double-backward Jacobian inconsistent: computing it row by row")
        jac = _rowwise(predicted, offsets)
    signal = predicted if create_graph else predicted.detach()
    return signal, jac


def _consistent(predicted: torch.Tensor, offsets: torch.Tensor, jac: torch.Tensor) -> bool:
    """Whether J^T w equals the plain reverse-mode gradient of w . predicted."""
    weights = torch.randn(
        predicted.shape, dtype=DTYPE, generator=torch.Generator().manual_seed(0)
    ).to(predicted.device)
    (reference,) = torch.autograd.grad(
        predicted, offsets, grad_outputs=weights, retain_graph=True, allow_unused=True
    )
    if reference is None:
        reference = torch.zeros_like(offsets)
    ours = jac.detach().T @ weights
    scale = float((jac.detach().abs().T @ weights.abs()).max()) or 1.0
    return float((ours - reference.detach()).abs().max()) <= CONSISTENCY_RTOL * scale


def _rowwise(predicted: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    rows = []
    for m in range(predicted.numel()):
        (row,) = torch.autograd.grad(predicted[m], offsets, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(offsets) if row is None else row)
    return torch.stack(rows).detach()
