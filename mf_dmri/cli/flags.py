"""Types of command-line flag values: argparse reports a bad value as a usage error naming
the flag (exit code 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def positive(kind: type = float, *, zero: bool = False) -> Callable[[str], float | int]:
    """An argparse ``type`` accepting finite numbers of ``kind`` that are > 0 (>= 0 with
    ``zero``)."""
    bound = ">= 0" if zero else "> 0"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number {bound}")
        return value

    parse.__name__ = f"{'integer' if kind is int else 'number'} {bound}"
    return parse
