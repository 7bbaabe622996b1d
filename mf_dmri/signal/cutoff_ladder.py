"""The a-posteriori truncation check: a ladder of cutoffs, each twice the previous.

The signal of a truncated basis does not converge monotonically in every measurement: as
modes are added the error of one measurement can change sign, and the change between two
cutoffs then passes near zero while the error itself does not (the coverage study found two
such cases, validation/coverage_study.md).  One change is therefore not trusted alone: the
ladder climbs until two consecutive changes

    c_j = ESTIMATE_SAFETY |E(lambda_j) - E(lambda_{j+1})|,  lambda_{j+1} = 2 lambda_j,

are both within the tolerance, and the bar of every measurement is the larger of its two
changes, max(c_j, c_{j+1}): it bounds the error of the middle value E(lambda_{j+1}), which
c_{j+1} measures directly (its error minus the smaller error of the finest) and c_j
measures at the previous step; both would have to vanish at once for the bar to miss.

The caller reports the middle level (an analytic basis: the finest was only built for the
check) or the finest (a fixed basis, whose modes are already paid for; the middle's bar
covers it conservatively).  A ladder that ends before two changes pass (a fixed basis
exhausted, the most doublings reached) returns its finest level with the larger of its
last two changes and ``accepted`` False.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from mf_dmri.signal.cutoff import ESTIMATE_SAFETY

Level = TypeVar("Level")


@dataclass(frozen=True)
class LadderResult(Generic[Level]):
    """The end of a climb: ``middle`` and ``finest`` levels, ``bar`` (M,) the larger of
    the last two changes [signal unit] (ESTIMATE_SAFETY included; the one change when the
    ladder had two levels only), ``accepted``: both changes were within the tolerance."""

    middle: Level
    finest: Level
    bar: torch.Tensor
    accepted: bool


def climb(
    levels: Iterable[Level],
    evaluate: Callable[[Level], torch.Tensor],
    tolerance: float,
    num_modes: Callable[[Level], int],
) -> LadderResult[Level]:
    """Evaluate ``levels`` (bases at doubling cutoffs, coarse first) until two consecutive
    changes are within ``tolerance`` [signal unit] (see the module docstring).  A level
    holding as many modes as the previous one is skipped (its change would be zero, not a
    measurement).  Raises ValueError when fewer than two distinct levels are given."""
    kept: list[Level] = []
    changes: list[torch.Tensor] = []
    previous = None
    for level in levels:
        if kept and num_modes(level) == num_modes(kept[-1]):
            continue
        value = evaluate(level)
        if previous is not None:
            changes.append(ESTIMATE_SAFETY * (previous - value).abs())
        kept.append(level)
        previous = value
        if len(changes) >= 2 and _within(changes[-2:], tolerance):
            return LadderResult(kept[-2], kept[-1], torch.maximum(*changes[-2:]), True)
    if not changes:
        raise ValueError(
            "the truncation check needs at least two cutoffs holding different numbers of "
            "modes; compute the basis with a larger cutoff (a smaller length_scale)"
        )
    bar = changes[-1] if len(changes) == 1 else torch.maximum(*changes[-2:])
    return LadderResult(kept[-2], kept[-1], bar, False)


def _within(changes: list[torch.Tensor], tolerance: float) -> bool:
    return all(float(change.max()) <= tolerance for change in changes)
