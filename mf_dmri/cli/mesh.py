"""``mf-dmri mesh check PATH --unit um``: load a surface mesh and print its diagnostics."""

from __future__ import annotations

import argparse

from mf_dmri import units

UNIT_NAMES = {"m": units.m, "mm": units.mm, "um": units.um, "nm": units.nm}


def parse_unit(text: str) -> float:
    """A unit name (m, mm, um, nm) or a number of metres per file unit."""
    if text in UNIT_NAMES:
        return UNIT_NAMES[text]
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"unit must be one of {', '.join(UNIT_NAMES)} or metres per file unit "
            f"(e.g. 8e-9), got {text!r}"
        ) from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"unit must be positive, got {text!r}")
    return value


def run_check(args: argparse.Namespace) -> int:
    from mf_dmri.geometry import check_surface
    from mf_dmri.io.mesh import load_surface

    mesh = load_surface(args.path, unit=args.unit)
    report = check_surface(
        mesh,
        allow_multiple_bodies=args.allow_multiple_bodies,
        check_self_intersections=not args.skip_self_intersections,
    )
    print(f"{args.path}:")
    print(report.summary())
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mesh`` command (subcommand ``check``)."""
    parser = subparsers.add_parser(
        "mesh", help="surface mesh tools", description="Surface mesh tools."
    )
    commands = parser.add_subparsers(dest="mesh_command", metavar="SUBCOMMAND")
    check = commands.add_parser(
        "check",
        help="check a surface mesh for problems",
        description="Load a surface mesh and list every problem (watertightness, winding, "
        "self-intersections, ...) with its location and fix.  Exit code 1 if "
        "any problem is found.",
    )
    check.add_argument("path", help="mesh file (PLY, STL, OBJ, OFF, GLB, VTK, VTU)")
    check.add_argument(
        "--unit",
        type=parse_unit,
        required=True,
        help="length unit of the file: m, mm, um, nm or metres per unit",
    )
    check.add_argument(
        "--allow-multiple-bodies",
        action="store_true",
        help="accept several disconnected bodies (compartments)",
    )
    check.add_argument(
        "--skip-self-intersections",
        action="store_true",
        help="skip the triangle-triangle intersection tests",
    )
    check.set_defaults(func=run_check)
