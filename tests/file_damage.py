"""Damage a stored file the ways a crash, a bad disk or a user can: the one helper of the
integrity tests (tests/test_integrity.py, tests/test_fem_cache.py, the bad-input suite)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HOWS = ("truncate", "flip", "empty", "swap")


def damage(path: Path, how: str, rng: np.random.Generator, other: Path | None = None) -> None:
    """Damage the file at ``path``: ``truncate`` (cut at a random length), ``flip`` (one
    random bit), ``empty``, or ``swap`` (exchange its bytes with the file ``other``)."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: int(rng.integers(0, len(data)))]))
    elif how == "flip":
        where = int(rng.integers(0, len(data)))
        data[where] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(data))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "swap":
        path.write_bytes(other.read_bytes())
        other.write_bytes(bytes(data))
    else:
        raise ValueError(f"how must be one of {HOWS}, got {how!r}")
