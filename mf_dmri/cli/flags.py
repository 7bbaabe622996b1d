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


def quantities(text: str) -> frozenset[str]:
    """An argparse ``type`` for ``--allow``: comma-separated quantities of
    ``mf_dmri.plausibility.RANGES`` (``length,gradient``)."""
    from mf_dmri.plausibility import RANGES

    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(names - set(RANGES))
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown quantities {unknown or '(none given)'}; give a comma-separated "
            f"list of {', '.join(RANGES)}"
        )
    return names


def add_allow(parser: argparse.ArgumentParser) -> None:
    """The ``--allow`` flag: quantities whose unusual or impossible values are intended
    (added to the config's ``[checks] allow``; docs/plausibility.md)."""
    parser.add_argument(
        "--allow",
        type=quantities,
        default=frozenset(),
        metavar="QUANTITY[,QUANTITY]",
        help="accept values outside the biological range for these quantities (e.g. "
        "length,gradient; as [checks] allow in the config, see docs/plausibility.md)",
    )
