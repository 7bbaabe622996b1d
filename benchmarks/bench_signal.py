"""Signals per second of the batched matrix-formalism propagation.

For L in {50, 200, 800} modes and 1,000 PGSE measurements (one batched matrix exponential
for all measurements), on CPU and, when available, on CUDA.  The raw path (no subspace
reduction) is timed on the first L modes of a ball basis; the reduced path (exact
symmetry reduction, mf_dmri.signal.reduction) is timed on the full default sphere basis.
Writes benchmarks/results/signal.md and prints the table.

Usage: python benchmarks/bench_signal.py [--device cpu|cuda] [--measurements 1000]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mf_dmri.analytic import ball_basis, sphere
from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal import Compartment, signal
from mf_dmri.signal.propagation import factor_signal

RADIUS, DIFFUSIVITY = 5e-6, 2e-9


def pgse_pieces(num_measurements: int, device: str) -> GradientPieces:
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(num_measurements, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    amplitudes = rng.uniform(0.0, 0.2, size=num_measurements)
    g = torch.tensor(directions * amplitudes[:, None], device=device)
    gradients = torch.stack([g, torch.zeros_like(g), -g], dim=1)
    return GradientPieces(torch.tensor([10e-3, 30e-3, 10e-3], device=device), gradients)


def first_modes(num_modes: int, device: str) -> Eigenbasis:
    big = ball_basis(RADIUS, max_eigenvalue=500 / RADIUS**2)
    return big.first_modes(num_modes).to(device)


def timed(function, repeats: int, device: str) -> float:
    function()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def run(device: str, num_measurements: int) -> list[dict]:
    pieces = pgse_pieces(num_measurements, device)
    rows = []
    for num_modes in (50, 200, 800):
        basis = first_modes(num_modes, device)
        diffusivity = torch.tensor(DIFFUSIVITY, device=device)
        repeats = 3 if num_modes < 800 or device == "cuda" else 1
        seconds = timed(
            lambda b=basis, d=diffusivity: factor_signal(b, d, pieces, reduce=False),
            repeats,
            device,
        )
        rows.append(
            {
                "path": "raw batched",
                "modes": num_modes,
                "device": device,
                "measurements": num_measurements,
                "seconds": seconds,
                "signals_per_s": num_measurements / seconds,
            }
        )
    comp = Compartment(sphere(RADIUS).to(device), DIFFUSIVITY)
    seconds = timed(lambda: signal(comp, pieces), 1, device)
    rows.append(
        {
            "path": "sphere default (reduced)",
            "modes": comp.domain.factors[0].num_modes,
            "device": device,
            "measurements": num_measurements,
            "seconds": seconds,
            "signals_per_s": num_measurements / seconds,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--measurements", type=int, default=1000)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    rows = run(args.device, args.measurements)
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
    lines = [
        f"# Signal throughput ({args.device}: {name or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads)",
        "",
        "| path | modes L | measurements | time [s] | signals/s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['path']} | {r['modes']} | {r['measurements']} | {r['seconds']:.3f} | "
        f"{r['signals_per_s']:.0f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    output = Path(args.output or Path(__file__).parent / "results" / f"signal_{args.device}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)


if __name__ == "__main__":
    main()
