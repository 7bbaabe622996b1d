"""GPU path check: signals and autograd gradients on CUDA equal the CPU ones.

Usage: python benchmarks/check_gpu.py  (needs a CUDA device; writes results/gpu_check.md)
"""

from __future__ import annotations

from pathlib import Path

import torch

from mf_dmri.analytic import cylinder, slab, sphere
from mf_dmri.sequences import OGSE, PGSE, multi_shell
from mf_dmri.signal import Compartment, signal
from mf_dmri.units import ms, s_per_mm2, um


def run(device: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    results = {}
    for name, waveform in (("pgse", PGSE(10 * ms, 30 * ms)), ("ogse", OGSE(20 * ms, 25 * ms, 2))):
        acq = multi_shell(waveform, [0.0, 1000 * s_per_mm2, 5000 * s_per_mm2], 10)
        for shape, builder in (
            ("cylinder", cylinder),
            ("sphere", sphere),
            ("slab", lambda r: slab(2 * r)),
        ):
            radius = torch.tensor(4 * um, dtype=torch.float64, device=device, requires_grad=True)
            diffusivity = torch.tensor(2e-9, dtype=torch.float64, device=device)
            values = signal(Compartment(builder(radius), diffusivity), acq)
            grad = torch.autograd.grad(values.real.sum(), radius)[0]
            results[f"{name}/{shape}"] = (values.detach().cpu(), grad.detach().cpu())
    return results


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    cpu, gpu = run("cpu"), run("cuda")
    lines = [
        f"# GPU check ({torch.cuda.get_device_name()}, torch {torch.__version__})",
        "",
        "| case | max abs signal diff | rel grad diff |",
        "|---|---|---|",
    ]
    for key in cpu:
        diff = float((cpu[key][0] - gpu[key][0]).abs().max())
        gdiff = float((cpu[key][1] - gpu[key][1]).abs() / cpu[key][1].abs().clamp_min(1e-300))
        lines.append(f"| {key} | {diff:.2e} | {gdiff:.2e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / "gpu_check.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
