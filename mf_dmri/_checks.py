"""Small input checks shared by every layer.  Errors name the problem and the fix."""

from __future__ import annotations

import math
from typing import Any

import torch

DTYPE = torch.float64
CDTYPE = torch.complex128


def as_real_tensor(value: Any, name: str, *, device: torch.device | None = None) -> torch.Tensor:
    """Convert ``value`` to a float64 tensor (keeping autograd history) and reject NaN/inf."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor")
        tensor = value if value.dtype == DTYPE else value.to(DTYPE)
        if device is not None:
            tensor = tensor.to(device)
    else:
        try:
            tensor = torch.as_tensor(value, dtype=DTYPE, device=device)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must be a number or an array of numbers, got {value!r}"
            ) from exc
    if not bool(torch.isfinite(tensor.detach()).all()):
        raise ValueError(f"{name} contains NaN or infinite values; pass finite numbers")
    return tensor


def check_positive(tensor: torch.Tensor, name: str, unit: str, *, allow_zero: bool = False) -> None:
    """Raise a ValueError if any entry is negative (or zero unless ``allow_zero``)."""
    values = tensor.detach()
    bad = values < 0 if allow_zero else values <= 0
    if bool(bad.any()):
        relation = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"{name} must be {relation} [{unit}], got {values[bad].flatten()[:3].tolist()}"
        )


def positive_scalar(
    value: Any, name: str, unit: str, *, allow_zero: bool = False, allow_inf: bool = False
) -> torch.Tensor:
    """A validated 0-d float64 tensor that is positive (history kept for autograd)."""
    if (
        allow_inf
        and not isinstance(value, torch.Tensor)
        and math.isinf(float(value))
        and float(value) > 0
    ):
        return torch.tensor(math.inf, dtype=DTYPE)
    tensor = as_real_tensor(value, name)
    if tensor.ndim != 0:
        raise ValueError(f"{name} must be a scalar [{unit}], got shape {tuple(tensor.shape)}")
    check_positive(tensor, name, unit, allow_zero=allow_zero)
    return tensor


def positive_integer(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; a float (30.5, also 30.0), a bool or a string is
    refused with a message naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, bool):
                raise TypeError
            number = value.__index__()  # numpy and torch integers
        except (AttributeError, TypeError):
            raise TypeError(
                f"{name} must be {_integer_text(minimum)}, got {value!r} "
                f"({type(value).__name__}); write a whole number such as {max(minimum, 30)}"
            ) from None
        value = int(number)
    if value < minimum:
        raise ValueError(f"{name} must be {_integer_text(minimum)}, got {value}")
    return int(value)


def _integer_text(minimum: int) -> str:
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
