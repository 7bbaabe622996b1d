"""Parameter axes of a sweep: explicit values, grids and seeded random samples.

Every axis holds SI values (the TOML reader converts units before building one).  Random
axes draw from a generator seeded by the sweep seed and the axis' own name, so adding or
removing another axis never changes the values drawn for this one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np


def _finite(values: tuple[float, ...], name: str) -> None:
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name}: values must be finite numbers, got {bad[:3]}")


@dataclass(frozen=True)
class Values:
    """An explicit list of values (a single value is a list of one)."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.values)
        if not values:
            raise ValueError("an empty list of values: give at least one value")
        _finite(values, "list")
        object.__setattr__(self, "values", values)

    @property
    def count(self) -> int:
        return len(self.values)

    def sample(self, seed: int, name: str) -> np.ndarray:
        return np.asarray(self.values, dtype=float)


@dataclass(frozen=True)
class Grid:
    """``num`` values from ``start`` to ``stop`` (both included), evenly spaced in value
    (``log = False``) or in logarithm (``log = True``, both ends positive)."""

    start: float
    stop: float
    num: int
    log: bool = False

    def __post_init__(self) -> None:
        _finite((self.start, self.stop), "grid ends")
        if not isinstance(self.num, int) or self.num < 1:
            raise ValueError(f"a grid needs num >= 1 points, got {self.num!r}")
        if self.num > 1 and self.start == self.stop:
            raise ValueError(
                f"an empty grid range [{self.start}, {self.stop}] with num = {self.num}: "
                "give two different ends or num = 1"
            )
        if self.log and (self.start <= 0 or self.stop <= 0):
            raise ValueError("a logarithmic grid needs positive ends; use a linear grid")

    @property
    def count(self) -> int:
        return self.num

    def sample(self, seed: int, name: str) -> np.ndarray:
        if self.log:
            return np.geomspace(self.start, self.stop, self.num)
        return np.linspace(self.start, self.stop, self.num)


@dataclass(frozen=True)
class Random:
    """``num`` independent samples, uniform on [low, high) in value or in logarithm."""

    low: float
    high: float
    num: int
    log: bool = False

    def __post_init__(self) -> None:
        _finite((self.low, self.high), "random range ends")
        if not isinstance(self.num, int) or self.num < 1:
            raise ValueError(f"a random axis needs num >= 1 samples, got {self.num!r}")
        if not self.low < self.high:
            raise ValueError(
                f"an empty random range [{self.low}, {self.high}): low must be below high"
            )
        if self.log and self.low <= 0:
            raise ValueError("a log-uniform range needs positive ends; use a uniform range")

    @property
    def count(self) -> int:
        return self.num

    def sample(self, seed: int, name: str) -> np.ndarray:
        rng = np.random.default_rng([seed, axis_key(name)])
        unit = rng.random(self.num)
        if self.log:
            low, high = math.log(self.low), math.log(self.high)
            return np.exp(low + (high - low) * unit)
        return self.low + (self.high - self.low) * unit


Axis = Values | Grid | Random


def axis_key(name: str) -> int:
    """A stable 63-bit integer derived from an axis name (for seeding)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") >> 1


def combine_axes(
    axes: dict[str, Axis], combine: str, seed: int, prefix: str
) -> dict[str, np.ndarray]:
    """Columns of the points spanned by ``axes``: their Cartesian product (``combine =
    'product'``, last axis fastest) or their element-wise pairing (``'zip'``, equal
    lengths).  An empty ``axes`` gives one point with no columns."""
    if combine not in ("product", "zip"):
        raise ValueError(f"combine must be 'product' or 'zip', got {combine!r}")
    names = list(axes)
    samples = [axes[n].sample(seed, f"{prefix}.{n}") for n in names]
    if not names:
        return {}
    if combine == "zip":
        lengths = {n: len(s) for n, s in zip(names, samples)}
        if len(set(lengths.values())) != 1:
            raise ValueError(
                f"{prefix}: combine = 'zip' needs axes of equal length, got {lengths}; "
                "give every axis the same number of values or use combine = 'product'"
            )
        return dict(zip(names, samples))
    mesh = np.meshgrid(*samples, indexing="ij")
    return {n: m.reshape(-1) for n, m in zip(names, mesh)}
