"""Sweep throughput and overheads.  Writes benchmarks/results/sweep.md (or --output).

1. Signals/s of the sweep simulator vs eigenbasis size L (disk bases of a cylinder,
   measurements along 10 in-plane-tilted directions, so the exact reduction keeps ~half).
2. Signals/s vs batch size (matrices per batched matrix_exp, set through the memory budget).
3. Eigenbasis reuse: a tissue-only sweep solved once per geometry vs once per row (a fresh
   analytic solve per row: the unit-basis cache is cleared, as it would be for a mesh).
4. Ray overhead per task (local Ray, 1 and 2 workers) vs the local executor, if ray exists.
5. At L = 200: the batched path vs Python loops over the measurements, (a) the naive loop
   (one measurement at a time, every piece exponentiated in the full basis) and (b) the
   library's ``signal()`` called once per measurement (same algorithm, no batching), for
   the isotropic analytic disk and for the same basis marked non-isotropic (as a mesh).

Usage: python benchmarks/bench_sweep.py [--device cpu|cuda] [--quick] [--threads N]
       [--output FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mf_dmri.analytic import cylinder, shapes
from mf_dmri.signal import Compartment, signal
from mf_dmri.signal.propagation import prepare_factor
from mf_dmri.sweep import (
    DEFAULT_REGISTRY,
    AcquisitionBlock,
    GeometrySimulator,
    GeometrySpec,
    SweepSpec,
    TissueSpec,
    Values,
    build_plan,
    run_sweep,
)
from mf_dmri.sweep.acquisition import measurement_table, timing_pieces
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms

RADIUS = 5 * um
DIRECTIONS = tuple(
    (float(np.cos(a)), float(np.sin(a)), 0.3) for a in np.linspace(0, np.pi, 10, endpoint=False)
)


def block(bvalues: int) -> AcquisitionBlock:
    shells = tuple(np.linspace(500, 5000, bvalues) * s_per_mm2)
    return AcquisitionBlock("pgse", (10 * ms,), (30 * ms,), shells, DIRECTIONS)


def domain_with_modes(modes: int):
    """Cylinder of RADIUS whose disk basis has about ``modes`` modes (cutoff bisection)."""
    low, high = 1.0, 5000.0
    for _ in range(40):
        mid = (low * high) ** 0.5
        count = cylinder(RADIUS, max_eigenvalue=mid / RADIUS**2).factors[0].num_modes
        low, high = (mid, high) if count < modes else (low, mid)
    return cylinder(RADIUS, max_eigenvalue=high / RADIUS**2)


class Sink:
    def __init__(self):
        self.chunks = {}

    def completed(self):
        return set(self.chunks)

    def write(self, chunk, signals, error_bars):
        self.chunks[chunk.index] = (signals, error_bars)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(function, device, repeats=3):
    """Shortest of ``repeats`` timings after a warm-up [s]: the machine may be shared, and
    other load only ever adds time."""
    function()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        function()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def throughput_vs_modes(device, sizes, diffusivities):
    table = measurement_table((block(10),))
    tissue = {"diffusivity": np.linspace(1, 3, diffusivities) * um2_per_ms}
    rows = []
    for modes in sizes:
        domain = domain_with_modes(modes)

        def run(domain=domain):
            GeometrySimulator({"intra": domain}, table, device=device).signals(tissue)

        seconds = timed(run, device)
        count = diffusivities * table.count
        rows.append((domain.factors[0].num_modes, count, seconds, count / seconds))
    return rows


def throughput_vs_batch(device, modes, batches, diffusivities):
    table = measurement_table((block(10),))
    tissue = {"diffusivity": np.linspace(1, 3, diffusivities) * um2_per_ms}
    domain = domain_with_modes(modes)
    rows = []
    for batch in batches:
        budget = batch * 16 * modes * modes * 3  # see signal.dense.DenseExponential.rows_per_batch

        def run(budget=budget):
            GeometrySimulator(
                {"intra": domain}, table, device=device, max_chunk_bytes=budget
            ).signals(tissue)

        seconds = timed(run, device)
        rows.append((batch, seconds, diffusivities * table.count / seconds))
    return rows


def reuse_gain(device, geometries, tissue_points):
    spec = SweepSpec(
        (GeometrySpec("cylinder", {"radius": Values(tuple(np.linspace(2, 5, geometries) * um))}),),
        TissueSpec({"diffusivity": Values(tuple(np.linspace(1, 3, tissue_points) * um2_per_ms))}),
        (block(3),),
        chunk_rows=tissue_points,
    )
    plan = build_plan(spec, DEFAULT_REGISTRY)
    start = time.perf_counter()
    run_sweep(plan, Sink(), device=device)
    sync(device)
    reused = time.perf_counter() - start
    start = time.perf_counter()
    for point in plan.geometries:
        for k in range(plan.num_tissue):
            shapes._unit_basis.cache_clear()  # a fresh solve, as for a mesh
            domains = DEFAULT_REGISTRY[point.shape](point.parameters, point.options)
            row = {"diffusivity": plan.tissue["diffusivity"][k : k + 1]}
            GeometrySimulator(domains, plan.measurements, device=device).signals(row)
    sync(device)
    return plan.num_rows, plan.measurements.count, reused, time.perf_counter() - start


def best_of(function, repeats=5):
    """Shortest of ``repeats`` timings [s] (robust to other load on the machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def ray_overhead(tasks):
    try:
        import ray
    except ImportError:
        return None
    spec = SweepSpec(
        (
            GeometrySpec(
                "cylinder",
                {
                    "radius": Values(tuple(np.linspace(2, 5, tasks) * um)),
                    "length_scale": Values((3 * um,)),
                },
            ),
        ),
        TissueSpec({"diffusivity": Values((2 * um2_per_ms,))}),
        (AcquisitionBlock("pgse", (10 * ms,), (30 * ms,), (1000 * s_per_mm2,), DIRECTIONS[:1]),),
    )
    run_sweep(spec, Sink())  # warm: the unit bases are cached after the first solve
    local = best_of(lambda: run_sweep(spec, Sink()))
    results = []
    for workers in (1, 2):
        start = time.perf_counter()
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parents[1])}},
        )
        started = time.perf_counter() - start
        run_sweep(spec, Sink(), executor="ray")  # warm the workers (imports, unit bases)
        elapsed = best_of(lambda: run_sweep(spec, Sink(), executor="ray"))
        ray.shutdown()
        # with one worker the tasks run one after the other: the excess is the overhead
        overhead = (elapsed - local) / tasks if workers == 1 else float("nan")
        results.append((workers, started, elapsed, overhead))
    return local, results


def naive_loop(domain, pieces, diffusivity):
    """One measurement at a time, every piece exponentiated in the full basis."""
    basis = domain.factors[0]
    lam = torch.diag(basis.eigenvalues).to(torch.complex128)
    u = basis.mode_integrals.to(torch.complex128)
    gamma = pieces.gyromagnetic_ratio
    free = domain.free_axes[0]
    out = []
    btensors = pieces.btensors().to(free.device)
    for m in range(pieces.num_measurements):
        state = u
        for p in range(pieces.num_pieces):
            q = basis.directional_moment(pieces.gradients[m, p] / 1.0).to(torch.complex128)
            generator = diffusivity * lam + 1j * gamma * q
            tau = pieces.durations[p].to(lam.device)
            state = torch.linalg.matrix_exp(-tau * generator) @ state
        restricted = (u @ state) / basis.volume
        out.append(restricted * torch.exp(-diffusivity * free @ btensors[m] @ free))
    return torch.stack(out)


def batched_vs_loop(device, modes, isotropic=True):
    """Part 5.  ``isotropic=False`` drops the analytic symmetry flag (as for a mesh basis):
    every direction is then a distinct waveform with its own reduction."""
    domain = domain_with_modes(modes).to(device)
    if not isotropic:
        disk = dataclasses.replace(domain.factors[0], isotropic=False)
        domain = dataclasses.replace(domain, factors=(disk,))
    table = measurement_table((block(10),))
    pieces = timing_pieces(table, table.timings[0])
    diffusivity = 2 * um2_per_ms
    compartment = Compartment(domain, diffusivity)
    batched = timed(
        lambda: GeometrySimulator({"intra": domain}, table, device=device).signals(
            {"diffusivity": np.array([diffusivity])}
        ),
        device,
    )
    batched_signal = timed(lambda: signal(compartment, pieces), device)
    singles = [
        type(pieces)(pieces.durations, pieces.gradients[m : m + 1])
        for m in range(pieces.num_measurements)
    ]
    loop_signal = timed(lambda: [signal(compartment, s) for s in singles], device, 2)
    naive = timed(lambda: naive_loop(domain, pieces, diffusivity), device, 2)
    reference = signal(compartment, pieces)
    error = float((naive_loop(domain, pieces, diffusivity) - reference).abs().max())
    loop_error = float(
        (torch.cat([signal(compartment, s) for s in singles]) - reference).abs().max()
    )
    plan = prepare_factor(domain.factors[0], pieces)
    return (
        plan,
        loop_error,
        domain.factors[0].num_modes,
        pieces.num_measurements,
        batched,
        batched_signal,
        loop_signal,
        naive,
        error,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "sweep.md"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = args.device
    quick = args.quick
    lines = [
        "# Sweep benchmark (benchmarks/bench_sweep.py)",
        "",
        f"device {device}; torch {torch.__version__}; {platform.processor() or platform.machine()};"
        f" {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()};"
        f" load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "## 1. Throughput vs eigenbasis size (4 diffusivities x 100 PGSE measurements)",
        "",
        "| L modes | signals | seconds | signals/s |",
        "|---|---|---|---|",
    ]
    for modes, count, seconds, rate in throughput_vs_modes(
        device, (50, 100) if quick else (50, 100, 200, 400), 4
    ):
        lines.append(f"| {modes} | {count} | {seconds:.3f} | {rate:,.0f} |")
    lines += [
        "",
        "## 2. Throughput vs batch size (L = 100, 4 diffusivities x 100 measurements)",
        "",
        "| matrices per matrix_exp | seconds | signals/s |",
        "|---|---|---|",
    ]
    for batch, seconds, rate in throughput_vs_batch(
        device, 100, (1, 8, 64) if quick else (1, 8, 64, 400), 4
    ):
        lines.append(f"| {batch} | {seconds:.3f} | {rate:,.0f} |")
    rows, meas, reused, fresh = reuse_gain(device, 2 if quick else 4, 3 if quick else 10)
    lines += [
        "",
        "## 3. Eigenbasis reuse (tissue-only sweep, default analytic cutoff)",
        "",
        f"{rows} rows x {meas} measurements: solved once per geometry {reused:.2f} s, "
        f"solved once per row {fresh:.2f} s: gain {fresh / reused:.1f}x "
        "(analytic solves are cheap; mesh solves cost far more, so the gain grows)",
    ]
    ray_result = None if device != "cpu" else ray_overhead(4 if quick else 16)
    lines += ["", "## 4. Ray overhead per task", ""]
    if ray_result is None:
        lines.append("ray not installed (or device is not cpu): not measured")
    else:
        local, results = ray_result
        lines += [
            f"local executor: {local:.2f} s for the tiny tasks",
            "",
            "| workers | ray.init s | sweep s | overhead per task s |",
            "|---|---|---|---|",
        ]
        for workers, started, elapsed, overhead in results:
            lines.append(f"| {workers} | {started:.1f} | {elapsed:.3f} | {overhead:.4f} |")
    for isotropic in (True, False):
        plan, loop_error, modes, count, batched, batched_signal, loop_signal, naive, error = (
            batched_vs_loop(device, 100 if quick else 200, isotropic)
        )
        kind = (
            "isotropic analytic disk: each shell is one canonical waveform"
            if isotropic
            else "same disk marked non-isotropic (as a mesh): one waveform per measurement"
        )
        arithmetic = "real (reflection parity)" if plan.parity is not None else "complex"
        lines += [
            "",
            f"## 5{'ab'[not isotropic]}. Batched path vs Python loop over measurements "
            f"(L = {modes}, {count} measurements, one diffusivity; {kind})",
            "",
            "| path | seconds | speed-up of the batched sweep path |",
            "|---|---|---|",
            f"| sweep GeometrySimulator (batched) | {batched:.3f} | 1 |",
            f"| signal() on all measurements (batched) | {batched_signal:.3f} | "
            f"{batched_signal / batched:.1f} |",
            f"| loop: signal() per measurement | {loop_signal:.3f} | {loop_signal / batched:.1f} |",
            f"| loop: naive, full basis, every piece | {naive:.3f} | {naive / batched:.1f} |",
            "",
            f"propagated: {plan.local.shape[0]} distinct waveforms, reduced basis of "
            f"{plan.data[0].shape[-1]} modes, {arithmetic} matrix exponentials",
            "",
            f"max |difference| to the batched signal(): naive loop {error:.1e}, "
            f"signal() loop {loop_error:.1e}",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
