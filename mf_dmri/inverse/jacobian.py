"""Jacobians of forward models with respect to their named parameters.

Computed in reverse mode only (every operation of the signal layer supports it to any
order): with g(u) = J^T u built with ``create_graph``, column i of J is d g_i / d u.  The
result is itself differentiable (with respect to the protocol, for design), and costs one
forward pass, one backward pass and one double-backward pass per parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from mf_dmri._checks import DTYPE

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
    signal = predicted if create_graph else predicted.detach()
    return signal, torch.stack(columns, dim=1)
