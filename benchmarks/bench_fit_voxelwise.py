"""Voxel-wise fitting throughput: voxels per second of ``mf_dmri.inverse.fit_voxels`` on a
1,000-voxel phantom (cylinders R = 2-8 um, intra-axonal signal fraction 0.4-0.8, free water
around; PGSE 10/30 ms, 4 amplitudes up to 300 mT/m x 10 directions + b = 0), noise-free and
with Gaussian noise (sigma = 0.01), and the single-voxel maximum-likelihood fit
(``mf_dmri.inverse.fit``, exact model) on a few voxels of the same phantom for the ratio.

    python benchmarks/bench_fit_voxelwise.py [--voxels 1000] [--threads 1]

Writes benchmarks/results/fit_voxelwise.md.  Both paths run in this one process, so the
ratio is measured under the same load; absolute rates depend on the machine's load (stated).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mf_dmri.inverse import CylinderModel, fit
from mf_dmri.inverse.voxel_model import VoxelModel
from mf_dmri.inverse.voxelwise import cramer_rao_voxels, fit_voxels
from mf_dmri.sequences import PGSE, Acquisition, electrostatic_directions

RESULTS = Path(__file__).resolve().parent / "results" / "fit_voxelwise.md"


def protocol() -> Acquisition:
    directions = electrostatic_directions(10)
    amplitudes = torch.cat(
        [torch.zeros(1)] + [torch.full((10,), g) for g in (0.08, 0.16, 0.24, 0.3)]
    )
    vectors = torch.cat([torch.zeros(1, 3, dtype=torch.float64)] + [directions] * 4)
    return Acquisition(PGSE(10e-3, 30e-3), vectors, amplitudes.double())


def phantom(count: int) -> dict[str, torch.Tensor]:
    fractions = -(-count // 25)  # 25 radii x enough fractions for at least ``count`` voxels
    radius, fraction = np.meshgrid(np.linspace(2, 8, 25), np.linspace(0.4, 0.8, fractions))
    count = radius.size
    return {
        "s0": torch.ones(count, dtype=torch.float64),
        "radius": torch.as_tensor(radius.ravel() * 1e-6),
        "intra_diffusivity": torch.full((count,), 2e-9, dtype=torch.float64),
        "intra_fraction": torch.as_tensor(fraction.ravel()),
        "extra_diffusivity": torch.full((count,), 1e-9, dtype=torch.float64),
    }


def main(voxels: int, threads: int) -> str:
    torch.set_num_threads(threads)
    acquisition = protocol()
    model = CylinderModel(extra="ball")
    parameters = model.parameters()
    start = time.perf_counter()
    voxel_model = VoxelModel.build(model, acquisition, parameters)
    build = time.perf_counter() - start
    truth = phantom(voxels)
    count = truth["radius"].numel()
    axes = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(count, 3)
    clean = voxel_model.signals(truth, axes)
    noisy = clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    lines = []
    rates = {}
    bound = cramer_rao_voxels(voxel_model, truth, axes, 0.01)["radius"]
    for label, data in (("noise-free", clean), ("sigma = 0.01", noisy)):
        start = time.perf_counter()
        result = fit_voxels(voxel_model, data, axes)
        seconds = time.perf_counter() - start
        rates[label] = count / seconds
        z = ((result.estimates["radius"] - truth["radius"]) / bound).abs()
        lines.append(
            f"| voxelwise, {label} | {count} | {seconds:.1f} | {rates[label]:.1f} | "
            f"{int(result.converged.sum())} | {float(z.max()):.3g} |"
        )
    single = 3
    start = time.perf_counter()
    for v in range(single):
        exact = CylinderModel(axis=(0.0, 0.0, 1.0), extra="ball")
        fit(exact.bind(acquisition), noisy[v * (count // single)], exact.parameters(s0=1.0))
    seconds = time.perf_counter() - start
    rate = single / seconds
    lines.append(
        f"| ml (exact model, Gaussian, sigma fitted), sigma = 0.01 | {single} | "
        f"{seconds:.1f} | {rate:.3f} | - | - |"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join(
        [
            "# Voxel-wise fitting throughput",
            "",
            f"Written by `python benchmarks/bench_fit_voxelwise.py --voxels {voxels} "
            f"--threads {threads}` on {platform.machine()} ({os.cpu_count()} cores, "
            f"load average {load:.1f} at the end, torch {torch.__version__}, "
            f"{threads} thread(s)).  CPU only.",
            "",
            f"Tables of the restricted signal built in {build:.1f} s (checked error "
            f"{voxel_model.table_error:.1e}); protocol: PGSE 10/30 ms, 41 measurements.",
            "",
            "| path | voxels | seconds | voxels/s | converged | max abs(error)/CRB(0.01) |",
            "|---|---|---|---|---|---|",
            *lines,
            "",
            f"Ratio voxelwise (noisy) / ml: {rates['sigma = 0.01'] / rate:.0f}x voxels per "
            "second, measured in this one run.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    report = main(arguments.voxels, arguments.threads)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report + "\n")
    print(report)
