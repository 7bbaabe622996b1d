"""Closed-form b-values, b-tensors and q-values of the standard shapes (all differentiable).

These are independent references for the numerical b-values of :class:`Acquisition`; the
amplitude arguments broadcast against each other and against the timings.
"""

from __future__ import annotations

import math
import operator

import torch

from mf_dmri._checks import as_real_tensor, check_positive
from mf_dmri.units import GAMMA_PROTON


def _nonnegative(value, name: str, unit: str) -> torch.Tensor:
    tensor = as_real_tensor(value, name)
    check_positive(tensor, name, unit, allow_zero=True)
    return tensor


def _timings(pulse_duration, pulse_separation) -> tuple[torch.Tensor, torch.Tensor]:
    delta = as_real_tensor(pulse_duration, "pulse_duration")
    check_positive(delta, "pulse_duration", "s")
    big_delta = as_real_tensor(pulse_separation, "pulse_separation")
    check_positive(big_delta, "pulse_separation", "s")
    if bool((delta.detach() > big_delta.detach()).any()):
        raise ValueError(
            "pulse_duration exceeds pulse_separation, so the lobes overlap; choose "
            "pulse_separation >= pulse_duration"
        )
    return delta, big_delta


def pgse_qvalue(
    amplitude, pulse_duration, gyromagnetic_ratio: float = GAMMA_PROTON
) -> torch.Tensor:
    """PGSE q-value ``q = gamma G delta`` [rad/m].

    Args:
        amplitude: gradient amplitude G [T/m], >= 0.
        pulse_duration: lobe duration delta [s].
        gyromagnetic_ratio: [rad/(s T)].
    """
    amplitude = _nonnegative(amplitude, "amplitude", "T/m")
    delta = as_real_tensor(pulse_duration, "pulse_duration")
    check_positive(delta, "pulse_duration", "s")
    return gyromagnetic_ratio * amplitude * delta


def pgse_bvalue(
    amplitude, pulse_duration, pulse_separation, gyromagnetic_ratio: float = GAMMA_PROTON
) -> torch.Tensor:
    """Stejskal-Tanner b-value ``b = gamma^2 G^2 delta^2 (Delta - delta/3)`` [s/m^2]
    (Stejskal & Tanner, J. Chem. Phys. 42, 288, 1965).

    Args:
        amplitude: gradient amplitude G [T/m], >= 0.
        pulse_duration: lobe duration delta [s].
        pulse_separation: separation Delta of the lobe starts [s], >= delta.
        gyromagnetic_ratio: [rad/(s T)].
    """
    amplitude = _nonnegative(amplitude, "amplitude", "T/m")
    delta, big_delta = _timings(pulse_duration, pulse_separation)
    q = gyromagnetic_ratio * amplitude * delta
    return q**2 * (big_delta - delta / 3.0)


def pgse_btensor(
    amplitude,
    pulse_duration,
    pulse_separation,
    direction,
    gyromagnetic_ratio: float = GAMMA_PROTON,
) -> torch.Tensor:
    """PGSE b-tensor ``B = b n n^T`` (..., 3, 3) [s/m^2] (linear encoding).

    Args:
        amplitude: gradient amplitude G [T/m], shape (...) or scalar.
        pulse_duration: lobe duration delta [s].
        pulse_separation: separation Delta [s].
        direction: (..., 3) unit gradient direction [-].
        gyromagnetic_ratio: [rad/(s T)].
    """
    bvalue = pgse_bvalue(amplitude, pulse_duration, pulse_separation, gyromagnetic_ratio)
    direction = as_real_tensor(direction, "direction")
    outer = direction[..., :, None] * direction[..., None, :]
    return bvalue[..., None, None] * outer


def double_pgse_bvalue(
    amplitude, pulse_duration, pulse_separation, gyromagnetic_ratio: float = GAMMA_PROTON
) -> torch.Tensor:
    """Double-PGSE b-value, the sum of the two blocks' Stejskal-Tanner b-values
    ``2 gamma^2 G^2 delta^2 (Delta - delta/3)`` [s/m^2] (each block refocuses its own
    wavevector, so the blocks do not interact; Shemesh et al., NMR Biomed. 23, 757, 2010).

    Independent of the mixing time and of the angle between the two directions.
    Arguments as :func:`pgse_bvalue`.
    """
    return 2.0 * pgse_bvalue(amplitude, pulse_duration, pulse_separation, gyromagnetic_ratio)


def double_pgse_btensor(
    amplitude,
    pulse_duration,
    pulse_separation,
    directions,
    gyromagnetic_ratio: float = GAMMA_PROTON,
) -> torch.Tensor:
    """Double-PGSE b-tensor ``b_1 (n_1 n_1^T + n_2 n_2^T)`` (..., 3, 3) [s/m^2] with
    ``b_1`` the single-block Stejskal-Tanner b-value.

    Args:
        directions: (..., 2, 3) unit directions of block 1 and block 2 [-].
        other arguments as :func:`pgse_bvalue`.
    """
    single = pgse_bvalue(amplitude, pulse_duration, pulse_separation, gyromagnetic_ratio)
    directions = as_real_tensor(directions, "directions")
    outer = (directions[..., :, None] * directions[..., None, :]).sum(dim=-3)
    return single[..., None, None] * outer


def ogse_bvalue(
    amplitude,
    pulse_duration,
    num_periods: int,
    kind: str = "cos",
    gyromagnetic_ratio: float = GAMMA_PROTON,
) -> torch.Tensor:
    """OGSE b-value [s/m^2] for n whole periods per lobe (independent of Delta):

    - cos: ``b = gamma^2 G^2 delta^3 / (4 pi^2 n^2)`` (Does, Parsons & Gore, Magn. Reson.
      Med. 49, 206, 2003; SpinDoctor ``CosOGSE``),
    - sin: ``b = 3 gamma^2 G^2 delta^3 / (4 pi^2 n^2)`` (SpinDoctor ``SinOGSE``).

    Derivation: in lobe 1, F(t) = delta/(2 pi n) sin(2 pi n t/delta) (cos) or
    delta/(2 pi n) (1 - cos(2 pi n t/delta)) (sin); F vanishes between the lobes and the
    second lobe mirrors the first, so b = 2 gamma^2 G^2 integral_0^delta F^2 dt.

    Args:
        amplitude: gradient amplitude G [T/m], >= 0.
        pulse_duration: lobe duration delta [s].
        num_periods: periods n per lobe [-], positive integer.
        kind: ``"cos"`` or ``"sin"``.
        gyromagnetic_ratio: [rad/(s T)].
    """
    if kind not in ("cos", "sin"):
        raise ValueError(f"kind must be 'cos' or 'sin', got {kind!r}")
    try:
        periods = None if isinstance(num_periods, bool) else operator.index(num_periods)
    except TypeError:
        periods = None
    if periods is None or periods < 1:
        raise ValueError(f"num_periods must be a positive integer, got {num_periods!r}")
    amplitude = _nonnegative(amplitude, "amplitude", "T/m")
    delta = as_real_tensor(pulse_duration, "pulse_duration")
    check_positive(delta, "pulse_duration", "s")
    factor = 1.0 if kind == "cos" else 3.0
    scale = (gyromagnetic_ratio * amplitude) ** 2 * delta**3
    return factor * scale / (4.0 * math.pi**2 * periods**2)
