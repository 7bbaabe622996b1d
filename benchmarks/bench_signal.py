"""Signal path by exponential actions (KrylovExponential) versus dense matrix exponentials
(DenseExponential) on the same FEM basis, in one run.

Basis: Neumann Laplace eigenbasis of a perturbed tetrahedral box (10 x 8 x 6 um, 8,000
nodes; generic: no degenerate eigenvalues), truncated to its first L modes.  Waveforms, 100
measurements in random directions (seed 0), D = 2 um^2/ms: PGSE (delta 10 ms, Delta 40 ms,
amplitudes uniform in [0, 0.2] T/m); cosine OGSE (two lobes of 20 ms, 2 periods, 25 ms
apart, amplitudes in [0, 0.1] T/m); a sampled waveform (16 random samples of 2 ms, no
symmetry, amplitudes in [0, 0.05] T/m).  Reported: the time of each path, their ratio and
the largest difference of the normalised signals.  Writes benchmarks/results/signal.md.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_signal.py [--modes 50 200 800]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_grad import _mesh  # noqa: E402

from mf_dmri.fem import mesh_eigenbasis  # noqa: E402
from mf_dmri.sequences import OGSE, PGSE, Acquisition, SampledWaveform  # noqa: E402
from mf_dmri.signal import DenseExponential, KrylovExponential  # noqa: E402
from mf_dmri.signal.propagation import factor_signal  # noqa: E402

DIFFUSIVITY = 2e-9
COUNT = 100


def _acquisition(waveform, top: float) -> Acquisition:
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(COUNT, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    amplitudes = rng.uniform(0.0, top, size=COUNT)
    return Acquisition(waveform, torch.tensor(directions), torch.tensor(amplitudes))


def waveforms() -> dict[str, Acquisition]:
    samples = np.random.default_rng(1).normal(size=16)
    samples -= samples.mean()  # a refocused effective gradient (zero moment at the echo)
    return {
        "PGSE": _acquisition(PGSE(10e-3, 40e-3), 0.2),
        "OGSE cos": _acquisition(OGSE(20e-3, 25e-3, 2), 0.1),
        "sampled": _acquisition(SampledWaveform(torch.tensor(samples), 2e-3), 0.05),
    }


def _timed(function) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def run(modes: list[int], other_modes: list[int]) -> list[dict]:
    nodes, elements = _mesh(20)
    seconds, basis = _timed(
        lambda: mesh_eigenbasis(torch.tensor(nodes), elements, max_eigenvalue=2.8e13, order=1)
    )
    print(f"basis: {nodes.shape[0]} nodes, {basis.num_modes} modes in {seconds:.1f} s")
    rows = []
    diffusivity = torch.tensor(DIFFUSIVITY)
    for name, acquisition in waveforms().items():
        pieces = acquisition.pieces()
        for num_modes in modes if name == "PGSE" else other_modes:
            truncated = basis.first_modes(num_modes)
            results = {}
            for label, propagator in (
                ("krylov", KrylovExponential()),
                ("dense", DenseExponential()),
            ):
                results[label] = _timed(
                    lambda p=propagator, b=truncated, q=pieces: factor_signal(
                        b, diffusivity, q, propagator=p
                    )
                )
            row = {
                "waveform": name,
                "pieces": int(pieces.durations.numel()),
                "modes": num_modes,
                "krylov_s": results["krylov"][0],
                "dense_s": results["dense"][0],
                "difference": float((results["krylov"][1] - results["dense"][1]).abs().max()),
            }
            rows.append(row)
            print(
                f"{name} L={num_modes}: krylov {row['krylov_s']:.2f} s, dense "
                f"{row['dense_s']:.2f} s, ratio {row['dense_s'] / row['krylov_s']:.1f}, "
                f"max difference {row['difference']:.1e}",
                flush=True,
            )
    return rows, basis


def crossover(basis, modes: list[int]) -> list[str]:
    """Best of two timings of each path for PGSE and the sampled waveform at small L: where
    ``choose_propagator`` switches (``DENSE_MAX_MODES``)."""
    lines = ["", "## Crossover (best of two runs each)", ""]
    lines += ["| waveform | modes L | Krylov [s] | dense [s] | dense / Krylov |", "|---" * 5 + "|"]
    for name in ("PGSE", "sampled"):
        pieces = waveforms()[name].pieces()
        for num_modes in modes:
            truncated = basis.first_modes(num_modes)
            best = {}
            for label, propagator in (
                ("krylov", KrylovExponential()),
                ("dense", DenseExponential()),
            ):
                best[label] = min(
                    _timed(
                        lambda p=propagator, b=truncated, q=pieces: factor_signal(
                            b, torch.tensor(DIFFUSIVITY), q, propagator=p
                        )
                    )[0]
                    for _ in range(2)
                )
            lines.append(
                f"| {name} | {num_modes} | {best['krylov']:.3f} | {best['dense']:.3f} | "
                f"{best['dense'] / best['krylov']:.2f} |"
            )
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--other-modes", type=int, nargs="+", default=[50, 200])
    parser.add_argument(
        "--crossover", type=int, nargs="*", default=[], help="small L to time both paths at"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/signal.md")
    args = parser.parse_args()
    rows, basis = run(args.modes, args.other_modes)
    lines = [
        "# Signal: exponential actions (Krylov) vs dense matrix exponentials",
        "",
        f"`python benchmarks/bench_signal.py`, {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {os.getloadavg()[0]:.1f} "
        "at the end (shared machine: absolute times are inflated, the ratios are measured in "
        "one run).  FEM basis of a perturbed box (8,000 nodes), 100 measurements in random "
        "directions; the difference is the largest |E_krylov - E_dense| (normalised signal).",
        "",
        "| waveform | pieces | modes L | Krylov [s] | dense [s] | dense / Krylov "
        "| max difference |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['waveform']} | {r['pieces']} | {r['modes']} | {r['krylov_s']:.2f} | "
        f"{r['dense_s']:.2f} | {r['dense_s'] / r['krylov_s']:.1f} | {r['difference']:.1e} |"
        for r in rows
    ]
    if args.crossover:
        lines += crossover(basis, args.crossover)
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
