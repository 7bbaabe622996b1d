"""The ``ml`` engine of ``mf-dmri fit``: one voxel, maximum likelihood with the exact models
(:func:`mf_dmri.inverse.fit`), Laplace and optional bootstrap uncertainties."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from mf_dmri.cli.fit import fixed_values, parse_axis
from mf_dmri.io.fit_output import file_unit, file_value, keys, write_json, write_voxel_table


def _protocol(scheme, data: np.ndarray):
    pairs = scheme.acquisitions()
    order = np.concatenate([rows for _, rows in pairs])
    return [acquisition for acquisition, _ in pairs], torch.as_tensor(data[order])


def _model(args, protocol, data: torch.Tensor, bvalues: np.ndarray):
    from mf_dmri.inverse import CylinderModel, SphereModel
    from mf_dmri.inverse.initial import fit_tensor

    unweighted = bvalues < 50e6
    s0 = float(data[torch.as_tensor(unweighted)].mean()) if unweighted.any() else float(data.max())
    if s0 <= 0:
        raise ValueError("the b = 0 signals are not positive; check the signal column")
    cutoff = {} if args.unit_cutoff is None else {"unit_cutoff": args.unit_cutoff}
    fixed = fixed_values(args.fix)
    if args.model == "sphere":
        model = SphereModel(extra=args.extra, **cutoff)
        return model, model.parameters(fixed, s0=s0)
    axis = parse_axis(args.axis)
    fit_axis = args.fit_axis
    if axis is None:
        axis, fit_axis = tuple(fit_tensor(protocol, data).principal_axis.tolist()), True
    distribution = "gamma" if args.model == "gamma-cylinder" else "single"
    model = CylinderModel(
        axis=axis, fit_axis=fit_axis, extra=args.extra, radius_distribution=distribution, **cutoff
    )
    return model, model.parameters(fixed, s0=s0)


def _summary(result, parameters, args, model) -> dict:
    units = {p.name: p.unit for p in parameters}
    rows = {}
    for name, row in result.to_dict()["parameters"].items():
        unit = units.get(name, "")
        key, _, _ = keys(name, unit)
        converted = {
            field: (file_value(name, value, unit) if isinstance(value, float) else value)
            for field, value in row.items()
            if field not in ("fitted", "at_bound")
        }
        rows[key] = {**converted, "fitted": row["fitted"], "unit": file_unit(name, unit)}
        if "at_bound" in row:
            rows[key]["at_bound"] = row["at_bound"]
    summary = result.to_dict()
    summary["parameters"] = rows
    summary.update(engine="ml", model=args.model, extra_compartment=args.extra)
    summary["axis"] = list(getattr(model, "axis", ())) or None
    if getattr(model, "fit_axis", False):
        values = {k: torch.tensor(v) for k, v in result.estimates.items()}
        summary["fitted_axis"] = model.fibre_axis(values).tolist()
    return summary


def run_ml(args: argparse.Namespace, scheme, data: np.ndarray) -> int:
    from mf_dmri.cli.fit import Progress
    from mf_dmri.inverse import fit

    protocol, ordered = _protocol(scheme, data)
    bvalues = np.concatenate([a.bvalues().numpy() for a in protocol])
    model, parameters = _model(args, protocol, ordered, bvalues)
    progress = Progress(not args.no_progress, "starts")
    result = fit(
        model.bind(protocol),
        ordered,
        parameters,
        likelihood=args.likelihood,
        sigma=args.sigma,
        starts=args.starts,
        seed=args.seed,
        bootstrap=args.bootstrap,
        progress=progress,
    )
    summary = _summary(result, parameters, args, model)
    output = Path(args.output)
    if output.suffix == ".json":
        write_json(output, summary)
    elif output.suffix == ".csv":
        units = {p.name: p.unit for p in parameters}
        units["sigma"] = ""
        columns = {}
        for name in result.estimates:
            key, se_key, _ = keys(name, units.get(name, ""))
            row = summary["parameters"][key]
            columns[key] = np.array([row["estimate"]])
            if "standard_error" in row:
                columns[se_key] = np.array([row["standard_error"]])
        write_voxel_table(output, columns)
    else:
        raise ValueError(f"output must end in .json or .csv, got {output.name!r}")
    c = result.convergence
    count = ordered.numel()
    print(f"mf-dmri fit: {args.model} (ml), {count} measurements, {c.message} -> {output}")
    for name in result.free_names:
        se = result.standard_error(name)
        value = result.estimates[name]
        print(
            f"  {name:34s} {value:.6g} +- {se:.3g}"
            if math.isfinite(se)
            else f"  {name:34s} {value:.6g} (no uncertainty)"
        )
    return 0 if c.converged else 3
