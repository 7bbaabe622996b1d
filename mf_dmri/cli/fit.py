"""``mf-dmri fit``: fit a tissue model (cylinder, gamma-distributed cylinders, sphere) to
one voxel's signals and write the parameters with uncertainties (JSON or CSV).

Inputs: a CSV with columns b [s/mm^2], gx, gy, gz (unit gradient direction; zero for
b = 0), signal, and optionally delta_ms, Delta_ms per row; or FSL bvals/bvecs plus a text
file of signals.  Timings come from --delta/--Delta [ms] unless given per row.  Units are
converted here; the library works in SI and so does the output (a unit column says which).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import torch

from mf_dmri import units

MODELS = ("cylinder", "gamma-cylinder", "sphere")
_REQUIRED = ("b", "gx", "gy", "gz", "signal")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit a tissue model to one voxel's signals",
        description="Maximum-likelihood fit with Laplace (and optional bootstrap) "
        "uncertainties; see docs/inverse.md for the models and their failure modes.",
    )
    source = parser.add_argument_group("data (a CSV, or FSL bvals/bvecs plus --signal)")
    source.add_argument("--data", help="CSV with columns b (s/mm^2), gx, gy, gz, signal")
    source.add_argument("--bvals", help="FSL bvals file (s/mm^2)")
    source.add_argument("--bvecs", help="FSL bvecs file")
    source.add_argument("--signal", help="text file with one signal per measurement")
    parser.add_argument("--delta", type=float, help="gradient pulse duration delta [ms]")
    parser.add_argument("--Delta", type=float, help="pulse separation Delta [ms]")
    parser.add_argument("--model", choices=MODELS, default="cylinder")
    parser.add_argument(
        "--extra",
        choices=("none", "zeppelin", "ball"),
        default="none",
        help="extra-cellular compartment (sphere: none or ball)",
    )
    parser.add_argument(
        "--axis", default="auto", help="fibre axis 'x,y,z', or 'auto' (tensor fit, axis fitted)"
    )
    parser.add_argument("--fit-axis", action="store_true", help="fit the axis near --axis")
    parser.add_argument("--likelihood", choices=("gaussian", "rician"), default="rician")
    parser.add_argument("--sigma", type=float, help="noise sigma [signal units]; default: fit")
    parser.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hold a parameter fixed (SI units), e.g. intra_diffusivity=2e-9",
    )
    parser.add_argument("--starts", type=int, default=4, help="number of optimiser starts")
    parser.add_argument(
        "--unit-cutoff",
        type=float,
        default=None,
        help="modes kept: eigenvalue <= cutoff / radius^2 (default: "
        "mf_dmri.inverse.MODEL_CUTOFF; lower is faster, less accurate)",
    )
    parser.add_argument("--bootstrap", type=int, default=0, help="parametric bootstrap refits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", required=True, help="output .json or .csv")
    parser.set_defaults(func=run)


def _read_csv(path: str) -> dict[str, np.ndarray]:
    lines = [
        ln for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    if not lines:
        raise ValueError(f"data file {path} is empty; it needs a header {','.join(_REQUIRED)}")
    rows = list(csv.reader(lines))
    header = [h.strip() for h in rows[0]]
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ValueError(
            f"data file {path} lacks columns {missing}; header must include {list(_REQUIRED)}"
        )
    table = {name: [] for name in header}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(
                f"data file {path} line {number} has {len(row)} fields, expected {len(header)}"
            )
        for name, field in zip(header, row):
            try:
                table[name].append(float(field))
            except ValueError as exc:
                raise ValueError(
                    f"data file {path} line {number}: {name}={field!r} is not a number"
                ) from exc
    columns = {k: np.asarray(v, dtype=np.float64) for k, v in table.items()}
    if columns["signal"].size == 0:
        raise ValueError(f"data file {path} has a header but no rows")
    return columns


def _read_fsl(args: argparse.Namespace) -> dict[str, np.ndarray]:
    from mf_dmri.io.fsl import read_fsl_bvals, read_fsl_bvecs

    if not (args.bvecs and args.signal):
        raise ValueError("with --bvals also give --bvecs and --signal")
    bvals = read_fsl_bvals(args.bvals)
    bvecs = read_fsl_bvecs(args.bvecs)
    signal = np.loadtxt(args.signal, dtype=np.float64, ndmin=1).reshape(-1)
    if not bvals.size == bvecs.shape[0] == signal.size:
        raise ValueError(
            f"{bvals.size} b-values, {bvecs.shape[0]} bvecs and {signal.size} signals: "
            "the three files must list the same measurements"
        )
    return {"b": bvals, "gx": bvecs[:, 0], "gy": bvecs[:, 1], "gz": bvecs[:, 2], "signal": signal}


def read_measurements(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Columns b [s/mm^2], gx, gy, gz, signal, delta_ms, Delta_ms of every measurement."""
    if bool(args.data) == bool(args.bvals):
        raise ValueError(
            "give exactly one data source: --data FILE.csv, or --bvals/--bvecs/--signal"
        )
    columns = _read_csv(args.data) if args.data else _read_fsl(args)
    count = columns["signal"].size
    for name, option in (("delta_ms", args.delta), ("Delta_ms", args.Delta)):
        if name not in columns:
            if option is None:
                flag = "--delta" if name == "delta_ms" else "--Delta"
                raise ValueError(f"timing unknown: give {flag} in ms (or a {name} column)")
            columns[name] = np.full(count, option, dtype=np.float64)
    for name, values in columns.items():
        if not np.isfinite(values).all():
            raise ValueError(f"column {name} has NaN or infinite values")
    return columns


def build_protocol(columns: dict[str, np.ndarray]) -> tuple[list, np.ndarray]:
    """(list of Acquisitions, one per timing; row order of their concatenation)."""
    from mf_dmri.sequences import PGSE, Acquisition

    timings = np.stack([columns["delta_ms"], columns["Delta_ms"]], axis=1)
    groups, order = [], []
    for delta_ms, big_delta_ms in np.unique(timings, axis=0):
        rows = np.flatnonzero((timings[:, 0] == delta_ms) & (timings[:, 1] == big_delta_ms))
        vectors = np.stack([columns[k][rows] for k in ("gx", "gy", "gz")], axis=1)
        bvalues = columns["b"][rows]
        norms = np.linalg.norm(vectors, axis=1)
        weighted = bvalues > 0
        if (np.abs(norms[weighted] - 1) > 1e-2).any():
            raise ValueError("gx, gy, gz must be unit vectors (within 1e-2) wherever b > 0")
        directions = np.where(
            norms[:, None] > 0, vectors / np.where(norms > 0, norms, 1)[:, None], 0
        )
        directions[~weighted] = 0.0
        waveform = PGSE(delta_ms * units.ms, big_delta_ms * units.ms)
        groups.append(
            Acquisition.from_bvalues(
                waveform, torch.as_tensor(bvalues * units.s_per_mm2), torch.as_tensor(directions)
            )
        )
        order.append(rows)
    return groups, np.concatenate(order)


def _fixed(pairs: list[str]) -> dict[str, float]:
    fixed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            fixed[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--fix expects NAME=VALUE (SI units), got {pair!r}")
    return fixed


def build_model(args, protocol, data: torch.Tensor, columns):
    """(model, parameters) with starting values from the data."""
    from mf_dmri.inverse import CylinderModel, SphereModel
    from mf_dmri.inverse.initial import fit_tensor

    unweighted = columns["b"] < 50
    s0 = float(np.mean(columns["signal"][unweighted])) if unweighted.any() else float(data.max())
    if s0 <= 0:
        raise ValueError("the b = 0 signals are not positive; check the signal column")
    initial = {"s0": s0}
    cutoff = {} if args.unit_cutoff is None else {"unit_cutoff": args.unit_cutoff}
    if args.model == "sphere":
        model = SphereModel(extra=args.extra, **cutoff)
        return model, model.parameters(_fixed(args.fix), **initial)
    if args.axis == "auto":
        axis, fit_axis = tuple(fit_tensor(protocol, data).principal_axis.tolist()), True
    else:
        try:
            axis = tuple(float(a) for a in args.axis.split(","))
        except ValueError as exc:
            raise ValueError(f"--axis must be 'auto' or 'x,y,z', got {args.axis!r}") from exc
        if len(axis) != 3:
            raise ValueError(f"--axis must be 'auto' or 'x,y,z', got {args.axis!r}")
        fit_axis = args.fit_axis
    distribution = "gamma" if args.model == "gamma-cylinder" else "single"
    model = CylinderModel(
        axis=axis, fit_axis=fit_axis, extra=args.extra, radius_distribution=distribution, **cutoff
    )
    return model, model.parameters(_fixed(args.fix), **initial)


def write_result(path: Path, result, parameters, extra: dict) -> None:
    units_of = {p.name: p.unit for p in parameters}
    units_of["sigma"] = "data"
    summary = result.to_dict()
    for name, row in summary["parameters"].items():
        row["unit"] = units_of.get(name, "")
    summary.update(extra)
    if path.suffix == ".json":
        path.write_text(json.dumps(summary, indent=2, default=float) + "\n")
        return
    if path.suffix != ".csv":
        raise ValueError(f"output must end in .json or .csv, got {path.name!r}")
    fields = ["name", "estimate", "standard_error", "lower", "upper", "unit", "fitted", "at_bound"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        for name, row in summary["parameters"].items():
            writer.writerow([name] + [row.get(f, "") for f in fields[1:]])


def run(args: argparse.Namespace) -> int:
    from mf_dmri.inverse import fit

    columns = read_measurements(args)
    protocol, order = build_protocol(columns)
    data = torch.as_tensor(columns["signal"][order])
    model, parameters = build_model(args, protocol, data, columns)
    result = fit(
        model.bind(protocol),
        data,
        parameters,
        likelihood=args.likelihood,
        sigma=args.sigma,
        starts=args.starts,
        seed=args.seed,
        bootstrap=args.bootstrap,
    )
    extra = {
        "model": args.model,
        "extra_compartment": args.extra,
        "axis": list(getattr(model, "axis", ())) or None,
    }
    if getattr(model, "fit_axis", False):
        values = {k: torch.tensor(v) for k, v in result.estimates.items()}
        extra["fitted_axis"] = model.fibre_axis(values).tolist()
    write_result(Path(args.output), result, parameters, extra)
    c = result.convergence
    print(f"mf-dmri fit: {args.model}, {data.numel()} measurements, {c.message} -> {args.output}")
    for name in result.free_names:
        se = result.standard_error(name)
        print(
            f"  {name:34s} {result.estimates[name]:.6g} +- {se:.3g}"
            if math.isfinite(se)
            else f"  {name:34s} {result.estimates[name]:.6g} (no uncertainty)"
        )
    return 0 if c.converged else 3
