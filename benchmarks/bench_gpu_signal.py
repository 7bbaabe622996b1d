"""Signals per second on a CUDA device against the CPU of the same machine, in one run, and
the propagators' costs on the GPU against the number of modes (where the choice by measured
cost should switch there).

Basis: the one of benchmarks/bench_signal.py (Neumann Laplace eigenbasis of a perturbed
tetrahedral box, 10 x 8 x 6 um, 8,000 nodes, generic spectrum), truncated to its first L
modes; built here, or read from ``--basis`` (a file written by ``--save-basis``, so that
the machine with the GPU skips the eigen-solve).  Waveforms as in bench_signal.py: 100
measurements in random directions, D = 2 um^2/ms; PGSE (3 pieces), cosine OGSE (513
pieces), a sampled waveform (16 pieces).  GPU timings are the best of two runs after a
warm-up run (CUDA start, kernels); CPU timings one run, with every thread of the machine
(the table names how many).  The difference column is max |E_gpu - E_cpu| of the
normalised signals.  Writes ``--out`` (default benchmarks/results/gpu_signal.md) after
every row, so a run cut short keeps what it measured.

Usage: python benchmarks/bench_gpu_signal.py [--basis FILE] [--out FILE]
       python benchmarks/bench_gpu_signal.py --save-basis FILE   (no GPU needed)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_grad import _mesh  # noqa: E402
from bench_signal import DIFFUSIVITY, waveforms  # noqa: E402

from mf_dmri.eigenbasis import Eigenbasis  # noqa: E402
from mf_dmri.fem import mesh_eigenbasis  # noqa: E402
from mf_dmri.signal import (  # noqa: E402
    DenseExponential,
    KrylovExponential,
    ShiftInvertExponential,
)
from mf_dmri.signal.propagation import factor_signal  # noqa: E402

FIELDS = ("eigenvalues", "moments", "mode_integrals", "volume", "axes")
PROPAGATORS = {
    "krylov": KrylovExponential,
    "dense": DenseExponential,
    "shift_invert": ShiftInvertExponential,
    "chosen": lambda: None,
}
#: Throughput: (waveform, L) on both devices; the CPU at L = 800 only where it is affordable.
THROUGHPUT = (
    ("PGSE", 200),
    ("PGSE", 800),
    ("OGSE cos", 200),
    ("OGSE cos", 800),
    ("sampled", 200),
    ("sampled", 800),
)
CPU_SKIP = {("OGSE cos", 800)}  # ~10 min of CPU for one timing
#: GPU cost against L: every propagator (dense OGSE only up to 200 modes).
SCAN_MODES = (50, 100, 200, 400, 800)


def load_basis(path: Path | None) -> Eigenbasis:
    if path is not None:
        return Eigenbasis(**torch.load(path))
    nodes, elements = _mesh(20)
    return mesh_eigenbasis(torch.tensor(nodes), elements, max_eigenvalue=2.8e13, order=1)


def timed(basis: Eigenbasis, pieces, label: str, repeats: int) -> tuple[float, torch.Tensor]:
    """Best time of ``repeats`` runs (after one warm-up on a GPU) and the signals."""
    device = basis.device
    diffusivity = torch.tensor(DIFFUSIVITY, dtype=torch.float64, device=device)
    runs = repeats + (1 if device.type == "cuda" else 0)
    best, value = float("inf"), None
    for run in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = factor_signal(basis, diffusivity, pieces, propagator=PROPAGATORS[label]())
        if device.type == "cuda":
            torch.cuda.synchronize()
        if device.type != "cuda" or run > 0:
            best = min(best, time.perf_counter() - start)
    return best, value.cpu()


class Report:
    def __init__(self, out: Path) -> None:
        self.out = out
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
        self.lines = [
            "# Signals per second: GPU against CPU",
            "",
            f"`python benchmarks/bench_gpu_signal.py`, {gpu}, torch {torch.__version__}, "
            f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
            "thread(s) on the CPU.  FEM basis of a perturbed box (8,000 nodes), 100 "
            "measurements in random directions, D = 2 um^2/ms.  GPU: best of two after a "
            "warm-up; CPU: one run.",
        ]

    def add(self, *lines: str) -> None:
        self.lines += lines
        for line in lines:
            print(line, flush=True)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("\n".join(self.lines) + "\n")


def throughput(basis: Eigenbasis, report: Report) -> None:
    report.add(
        "",
        "## Throughput (default propagator choice on each device)",
        "",
        "| waveform | pieces | L | GPU [s] | GPU signals/s | CPU [s] | CPU signals/s | "
        "GPU / CPU | max difference |",
        "|---" * 9 + "|",
    )
    acquisitions = waveforms()
    for name, modes in THROUGHPUT:
        pieces = acquisitions[name].pieces()
        count = pieces.num_measurements
        truncated = basis.first_modes(modes)
        gpu_s, gpu_e = timed(truncated.to("cuda"), pieces, "chosen", 2)
        cpu = "- | - | - | -"
        if (name, modes) not in CPU_SKIP:
            cpu_s, cpu_e = timed(truncated, pieces, "chosen", 1)
            cpu = (
                f"{cpu_s:.3f} | {count / cpu_s:,.0f} | {cpu_s / gpu_s:.1f} | "
                f"{float((gpu_e - cpu_e).abs().max()):.1e}"
            )
        report.add(
            f"| {name} | {int(pieces.durations.numel())} | {modes} | {gpu_s:.3f} | "
            f"{count / gpu_s:,.0f} | {cpu} |"
        )


#: Column order of the scan tables (their headers name them in this order).
SCAN_COLUMNS = ("dense", "krylov", "shift_invert", "chosen")


def _scan_row(name: str, modes: int, seconds: dict[str, float], difference: float) -> str:
    """One row of a scan table: the time of each propagator in ``SCAN_COLUMNS`` ('-' where
    it was not run) and the largest difference between them."""
    cells = " | ".join(f"{seconds[k]:.3f}" if k in seconds else "-" for k in SCAN_COLUMNS)
    return f"| {name} | {modes} | {cells} | {difference:.1e} |"


def gpu_scan(basis: Eigenbasis, report: Report) -> None:
    report.add(
        "",
        "## GPU: each propagator against L [s] (best of two after a warm-up; OGSE at 200 "
        "and 400 only)",
        "",
        "| waveform | L | dense | Krylov | shift-invert | chosen | max difference to Krylov |",
        "|---" * 7 + "|",
    )
    acquisitions = waveforms()
    for name in ("PGSE", "sampled", "OGSE cos"):
        pieces = acquisitions[name].pieces()
        for modes in SCAN_MODES if name != "OGSE cos" else (200, 400):
            truncated = basis.first_modes(modes).to("cuda")
            times, values = {}, {}
            for label in ("dense", "krylov", "shift_invert", "chosen"):
                if label == "dense" and name == "OGSE cos" and modes > 400:
                    continue
                if label in ("shift_invert", "chosen") and name == "OGSE cos":
                    continue  # shift-invert: one factorisation per piece; chosen: below
                times[label], values[label] = timed(truncated, pieces, label, 2)
            difference = max(float((v - values["krylov"]).abs().max()) for v in values.values())
            report.add(_scan_row(name, modes, times, difference))


def timed_gradient(basis: Eigenbasis, pieces, label: str) -> tuple[float, float]:
    """Forward and backward time of d(sum |E|^2)/dD on a GPU (one run after a warm-up) and
    the derivative."""
    best, derivative = float("inf"), 0.0
    for run in range(2):
        torch.cuda.synchronize()
        start = time.perf_counter()
        rate = torch.tensor(DIFFUSIVITY, dtype=torch.float64, device="cuda", requires_grad=True)
        value = factor_signal(basis, rate, pieces, propagator=PROPAGATORS[label]())
        (grad,) = torch.autograd.grad((value.abs() ** 2).sum(), rate)
        torch.cuda.synchronize()
        if run > 0:
            best = min(best, time.perf_counter() - start)
        derivative = float(grad)
    return best, derivative


def gpu_gradient_scan(basis: Eigenbasis, report: Report) -> None:
    report.add(
        "",
        "## GPU: forward + backward of d(sum |E|^2)/dD [s] (one run after a warm-up)",
        "",
        "| waveform | L | dense | Krylov | shift-invert | chosen | max relative difference |",
        "|---" * 7 + "|",
    )
    acquisitions = waveforms()
    for name in ("PGSE", "sampled"):
        pieces = acquisitions[name].pieces()
        for modes in (200, 400, 800):
            truncated = basis.first_modes(modes).to("cuda")
            results = {
                label: timed_gradient(truncated, pieces, label)
                for label in ("dense", "krylov", "shift_invert", "chosen")
                if not (label == "shift_invert" and name == "sampled")
            }
            reference = results["krylov"][1]
            spread = max(abs(d - reference) / abs(reference) for _, d in results.values())
            report.add(_scan_row(name, modes, {k: r[0] for k, r in results.items()}, spread))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--basis", type=Path, help="basis file written by --save-basis")
    parser.add_argument("--save-basis", type=Path, help="build the basis, save it, stop")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu_signal.md")
    args = parser.parse_args()
    start = time.perf_counter()
    basis = load_basis(args.basis)
    print(f"basis: {basis.num_modes} modes in {time.perf_counter() - start:.1f} s", flush=True)
    if args.save_basis is not None:
        torch.save({name: getattr(basis, name) for name in FIELDS}, args.save_basis)
        return
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark compares a GPU with the CPU")
    report = Report(args.out)
    gpu_scan(basis, report)
    gpu_gradient_scan(basis, report)
    throughput(basis, report)


if __name__ == "__main__":
    main()
