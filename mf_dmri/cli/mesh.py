"""``mf-dmri mesh check PATH --unit um``: load a surface mesh and print its diagnostics;
``mf-dmri mesh repair IN OUT --unit um [--remesh-max-edge 1]``: repair it (and remesh it
into well-shaped triangles) and write the result;
``mf-dmri mesh swc IN.swc OUT.stl --unit um``: the surface of an SWC morphology."""

from __future__ import annotations

import argparse

from mf_dmri import units

UNIT_NAMES = {"m": units.m, "mm": units.mm, "um": units.um, "nm": units.nm}


class _Unit(float):
    """A unit in metres that remembers how it was written (for messages)."""

    text: str


def parse_unit(text: str) -> float:
    """A unit name (m, mm, um, nm) or a number of metres per file unit."""
    if text in UNIT_NAMES:
        return _unit(UNIT_NAMES[text], text)
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"unit must be one of {', '.join(UNIT_NAMES)} or metres per file unit "
            f"(e.g. 8e-9), got {text!r}"
        ) from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"unit must be positive, got {text!r}")
    return _unit(value, text)


def _unit(value: float, text: str) -> _Unit:
    unit = _Unit(value)
    unit.text = text
    return unit


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
    print(report.summary(for_cli=True).replace("IN OUT --unit UNIT", _in_out(args)))
    return 0 if report.ok else 1


def repaired_name(path) -> str:
    """Where ``mf-dmri mesh repair`` is suggested to write the repair of ``path``."""
    out = str(path).rsplit(".", 1)
    return f"{out[0]}_repaired.{out[1]}" if len(out) == 2 else f"{path}_repaired.ply"


def _in_out(args: argparse.Namespace) -> str:
    unit = getattr(args.unit, "text", args.unit)
    return f"{args.path} {repaired_name(args.path)} --unit {unit}"


def _write_surface(surface, args: argparse.Namespace) -> None:
    """Write ``surface`` [m] to ``args.output`` in ``args.unit`` (format by suffix) and
    print the ``IN -> OUT:`` line that heads the report of ``repair`` and ``swc``."""
    from mf_dmri.io.mesh import save_surface

    save_surface(surface, args.output, unit=args.unit)
    print(f"{args.input} -> {args.output}:")


def _add_unit(parser: argparse.ArgumentParser, files: str) -> None:
    parser.add_argument(
        "--unit",
        type=parse_unit,
        required=True,
        help=f"length unit of {files}: m, mm, um, nm or metres per unit (navis: 8e-9)",
    )


def run_repair(args: argparse.Namespace) -> int:
    from mf_dmri.geometry import repair_surface
    from mf_dmri.io.mesh import load_surface

    mesh = load_surface(args.input, unit=args.unit)
    repaired, report = repair_surface(
        mesh, merge_tolerance=args.merge_tolerance, keep_largest=args.keep_largest
    )
    repair_lines = report.summary()
    remesh_lines = None
    if args.remesh_max_edge is not None:
        from mf_dmri.geometry import remesh_surface

        min_edge = None if args.remesh_min_edge is None else args.remesh_min_edge * args.unit
        repaired, remeshed = remesh_surface(
            repaired,
            max_edge=args.remesh_max_edge * args.unit,
            min_edge=min_edge,
            cells_across=args.remesh_cells_across,
        )
        remesh_lines = remeshed.summary()
    _write_surface(repaired, args)
    print(repair_lines)
    if remesh_lines is not None:
        print(remesh_lines)
    return 0


def run_swc(args: argparse.Namespace) -> int:
    from mf_dmri.geometry.morphology import cell_parts
    from mf_dmri.geometry.morphology_simplify import simplify_morphology
    from mf_dmri.geometry.morphology_surface import morphology_surface
    from mf_dmri.io.swc import load_swc

    def metres(value: float | None) -> float | None:
        return None if value is None else value * units.um

    morphology = load_swc(args.input, unit=args.unit)
    simplified, report = simplify_morphology(
        morphology,
        min_radius=metres(args.min_radius_um),
        merge_tolerance=metres(args.merge_tolerance_um),
        min_twig_length=metres(args.min_twig_length_um),
        keep_largest_tree=args.keep_largest_tree,
    )
    parts = cell_parts(simplified, soma=args.soma)
    surface = morphology_surface(parts, segments=args.segments)
    _write_surface(surface, args)
    skeleton, enclosed = parts.volume_sum(), surface.signed_volume()
    print(f"simplification: {report.summary()}")
    print(
        f"soma: {parts.soma_convention}; {len(parts.starts)} frusta; surface "
        f"{surface.n_faces} triangles, volume {enclosed / units.um**3:.2f} um^3 against the "
        f"frustum + soma sum {skeleton / units.um**3:.2f} um^3 (the soma as its "
        f"{parts.soma_convention} sphere, so it differs from the simplification's segment "
        f"frusta) "
        f"({100 * (enclosed - skeleton) / skeleton:+.2f} %: overlaps at joints counted once, "
        "rounded joints and tips added)"
    )
    return 0


def _add_swc(commands: argparse._SubParsersAction) -> None:
    swc = commands.add_parser(
        "swc",
        help="surface of an SWC morphology (union of round cones and the soma)",
        description="Read an SWC morphology, simplify it only as asked (each change "
        "counted), and write the closed surface of the union of its round cones (one per "
        "segment) and soma sphere; print the volume against the frustum sum.",
    )
    swc.add_argument("input", help="SWC file")
    swc.add_argument("output", help="surface file to write (format by suffix)")
    _add_unit(swc, "both files")
    swc.add_argument(
        "--min-radius-um", type=float, help="radius floor [um] (default: none; radii as read)"
    )
    swc.add_argument(
        "--merge-tolerance-um",
        type=float,
        help="merge collinear nodes deviating by at most this in position and radius [um] "
        "(default: no merging)",
    )
    swc.add_argument(
        "--min-twig-length-um",
        type=float,
        help="drop terminal branches shorter than this [um] (default: none dropped)",
    )
    swc.add_argument(
        "--keep-largest-tree", action="store_true", help="of several trees keep the largest"
    )
    swc.add_argument(
        "--soma",
        choices=("auto", "sphere", "frusta"),
        default="auto",
        help="soma convention: auto (one point or NeuroMorpho three points -> sphere, "
        "otherwise frusta), sphere (e.g. a contour), frusta (default auto)",
    )
    swc.add_argument(
        "--segments", type=int, default=8, help="vertices around each sphere (default 8)"
    )
    swc.set_defaults(func=run_swc)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mesh`` command (subcommands ``check``, ``repair``, ``swc``)."""
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
    _add_unit(check, "the file")
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
    repair = commands.add_parser(
        "repair",
        help="repair a surface mesh and write the result",
        description="Merge near-coincident vertices, remove fins and double-sided sheets, "
        "re-triangulate around crossings and non-manifold edges, close holes and unite "
        "crossing bodies; print every change and the volume before and after.",
    )
    repair.add_argument("input", help="mesh file to repair")
    repair.add_argument("output", help="where to write the repaired surface (format by suffix)")
    _add_unit(repair, "both files")
    repair.add_argument("--keep-largest", action="store_true", help="keep only the largest body")
    repair.add_argument(
        "--merge-tolerance",
        type=float,
        default=1e-3,
        help="merge vertices closer than this fraction of their local edge length (default 1e-3)",
    )
    repair.add_argument(
        "--remesh-max-edge",
        type=float,
        help="then remesh into well-shaped triangles (remesh_surface) with edges up to this "
        "length (in --unit; e.g. a third of the eigenbasis length scale), following the local "
        "thickness; without it the repaired triangles (often slivers) are kept",
    )
    repair.add_argument(
        "--remesh-min-edge",
        type=float,
        help="floor of the remeshing target edge (in --unit; default max edge / 4)",
    )
    repair.add_argument(
        "--remesh-cells-across",
        type=float,
        default=1.5,
        help="remeshing target edges across the local thickness (default 1.5)",
    )
    repair.set_defaults(func=run_repair)
    _add_swc(commands)
