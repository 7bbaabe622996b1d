"""The ``mf-dmri`` command line: each subcommand lives in its own module of this package
and exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed arguments and returning an exit code.

One error boundary (:func:`run_guarded`) turns every failure into one line on stderr,
``mf-dmri COMMAND: error: ...`` naming the problem, the offending key, file or flag and the
fix, and an exit code of :data:`EXIT_CODES` (docs/errors.md); ``--debug`` shows the
traceback instead."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

#: Exit codes of ``mf-dmri`` (docs/errors.md lists them with examples).
EXIT_OK = 0
EXIT_INPUT = 1  # bad input: config key, flag value, input file (content or missing)
EXIT_USAGE = 2  # command line not understood (argparse)
EXIT_STORED = 3  # a stored result is damaged or stale and cannot be recomputed here
EXIT_DEPENDENCY = 4  # an optional package the command needs is not installed
EXIT_INTERNAL = 70  # a bug in mf_dmri: rerun with --debug and report the traceback
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INPUT: "bad input (config key, flag value or input file); the message names it",
    EXIT_USAGE: "command line not understood (unknown flag, missing argument)",
    EXIT_STORED: "a stored result is damaged or stale and cannot be recomputed here",
    EXIT_DEPENDENCY: "an optional package the command needs is not installed",
    EXIT_INTERNAL: "internal error (a bug): rerun with --debug and report the traceback",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: Subcommand modules (mf_dmri.cli.<name>), in the order shown by --help.
SUBCOMMAND_MODULES: tuple[str, ...] = ("demo", "simulate", "mesh", "fit", "sweep")


def build_parser() -> argparse.ArgumentParser:
    from mf_dmri import __version__

    parser = argparse.ArgumentParser(
        prog="mf-dmri", description="Differentiable diffusion-MRI simulator (matrix formalism)."
    )
    parser.add_argument("--version", action="version", version=f"mf_dmri {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="treat a mesh that cannot resolve the mode cutoff as an error, not a warning",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"mf_dmri.cli.{name}").register(subparsers)
    return parser


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its lines joined by '; ')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # a line ending in ':' introduces the next: no '; ' after it
    parts = [line + (" " if line.endswith(":") else "; ") for line in lines]
    return "".join(parts).removesuffix("; ").rstrip() or type(exc).__name__


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) of an exception reaching the command line."""
    from mf_dmri.io.sealed import ArtefactError

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, ArtefactError):
        return EXIT_STORED, one_line(exc)
    if isinstance(exc, Warning):  # a warning made an error by --strict
        return EXIT_INPUT, f"{one_line(exc)} (an error under --strict)"
    if isinstance(exc, ImportError):
        name = getattr(exc, "name", None) or one_line(exc)
        return EXIT_DEPENDENCY, (
            f"this needs the optional package {name!r}, which is not installed: "
            f"pip install {name} (scripts/install.sh installs every optional package)"
        )
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)) and (
        exc.filename is not None
    ):
        return EXIT_INPUT, f"{exc.strerror or 'cannot open'}: {exc.filename}; check the path"
    if isinstance(exc, PermissionError) and exc.filename is not None:
        return EXIT_INPUT, (
            f"permission denied: {exc.filename}; choose a file or folder you may write/read"
        )
    # mf_dmri raises plain ArithmeticError for degenerate meshes; its subclasses
    # (ZeroDivisionError, OverflowError) are bugs
    input_error = isinstance(exc, (ValueError, TypeError, KeyError, OSError, LookupError))
    if input_error or type(exc) is ArithmeticError:
        text = one_line(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        return EXIT_INPUT, text
    return EXIT_INTERNAL, (
        f"internal error ({type(exc).__name__}: {one_line(exc)}); rerun with --debug for the "
        "traceback and report it"
    )


def run_guarded(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """``func(args)`` inside the error boundary: a failure is one line on stderr and an
    exit code of :data:`EXIT_CODES`; with ``args.debug`` the exception propagates."""
    command = getattr(args, "command", None) or "sweep"
    try:
        return int(func(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:
        if getattr(args, "debug", False):
            raise
        code, message = classify(exc)
        print(f"mf-dmri {command}: error: {message}", file=sys.stderr)
        return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USAGE
    if args.strict:
        import warnings

        from mf_dmri.fem.resolution import ResolutionWarning

        with warnings.catch_warnings():
            warnings.simplefilter("error", ResolutionWarning)
            return run_guarded(args.func, args)
    return run_guarded(args.func, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
