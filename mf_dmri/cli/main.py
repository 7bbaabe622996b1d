"""The ``mf-dmri`` command line: each subcommand lives in its own module of this package
and exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed arguments and returning an exit code."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: Subcommand modules (mf_dmri.cli.<name>), in the order shown by --help.
SUBCOMMAND_MODULES: tuple[str, ...] = ("demo", "simulate", "mesh", "fit", "sweep")


def build_parser() -> argparse.ArgumentParser:
    from mf_dmri import __version__

    parser = argparse.ArgumentParser(
        prog="mf-dmri", description="Differentiable diffusion-MRI simulator (matrix formalism)."
    )
    parser.add_argument("--version", action="version", version=f"mf_dmri {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"mf_dmri.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        print(f"mf-dmri {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
