"""Free-form reconstruction: recover a rotated ellipsoidal cell (semi-axes 5, 4, 3 um) from
its PGSE signal, starting from a sphere, in the smoothest translation-free Laplacian modes
of the sphere's surface (degrees 0 and 2 of the spherical harmonics).

The target signal comes from an independent, finer finite-element mesh of the ellipsoid;
--snr adds Gaussian noise of sigma = 1 / SNR to it (examples/axon_reconstruction.py).
Writes the reconstructed surface (PLY, in um), the loss history (JSON) and a PNG of truth,
start and result to --output.
Run:  python examples/reconstruct_ellipsoid.py [--small] [--snr 50] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from axon_reconstruction import add_noise, render
from scipy.spatial.transform import Rotation

from mf_dmri.fem import mesh_eigenbasis
from mf_dmri.geometry import SurfaceMesh, ellipsoid, sphere, tetrahedralize
from mf_dmri.inverse import PGSEProtocol
from mf_dmri.inverse.reconstruct import reconstruct_shape, shape_distance
from mf_dmri.inverse.shape_space import SurfaceShapeSpace
from mf_dmri.io.mesh import save_surface
from mf_dmri.sequences import fibonacci_sphere
from mf_dmri.signal import Compartment, signal
from mf_dmri.units import ms, mT_per_m, um

DIFFUSIVITY = 2e-9  # [m^2/s]


def target_shape(subdivisions: int) -> SurfaceMesh:
    surface = ellipsoid((5 * um, 4 * um, 3 * um), subdivisions=subdivisions)
    rotation = Rotation.from_rotvec([0.3, -0.2, 0.4]).as_matrix()
    return SurfaceMesh(np.asarray(surface.vertices) @ rotation.T, np.asarray(surface.faces))


def main(small: bool = False, output: str | None = None, snr: float | None = None) -> dict:
    """Reconstruct and print; returns distances before/after and the histories."""
    target = target_shape(2 if small else 3)
    target_mesh = tetrahedralize(target, length_scale=(1.3 if small else 1.0) * um)
    # P1, the elements of the differentiable model that is fitted (P1 only)
    target_basis = mesh_eigenbasis(
        target_mesh.nodes, target_mesh.elements, max_eigenvalue=60 / (3 * um) ** 2, order=1
    )
    directions = fibonacci_sphere(15 if small else 30, hemisphere=True)
    amplitudes = [60 * mT_per_m, 120 * mT_per_m] + ([] if small else [200 * mT_per_m])
    count = len(amplitudes)
    protocol = PGSEProtocol([10 * ms] * count, [30 * ms] * count, amplitudes, directions)
    compartment = Compartment(target_basis, DIFFUSIVITY)
    clean = torch.cat([signal(compartment, g).real for g in protocol.piece_groups()]).detach()
    data, sigma = add_noise(clean, snr, seed=0)

    volume = abs(target.signed_volume())
    start_radius = (3 * volume / (4 * np.pi)) ** (1 / 3)  # same volume (a known prior here)
    reference = tetrahedralize(sphere(start_radius, subdivisions=2), length_scale=1.5 * um)
    space = SurfaceShapeSpace.from_volume_mesh(reference.nodes, reference.elements, num_modes=6)
    before = shape_distance(space.surface(torch.zeros(6)), target)
    tic = time.perf_counter()
    result = reconstruct_shape(
        space,
        protocol,
        data,
        diffusivity=DIFFUSIVITY,
        sigma=sigma,
        num_modes=30,
        smoothness=1e-3,
        iterations=12 if small else 40,
        learning_rate=0.03,
    )
    seconds = time.perf_counter() - tic
    after = shape_distance(result.surface, target)
    print(
        f"{protocol.num_measurements} measurements, "
        f"{'noise-free' if snr is None else f'SNR {snr:g} (Gaussian)'}; "
        f"start: sphere of radius {start_radius / um:.2f} um"
    )
    volumes = [abs(space.surface(torch.zeros(6)).signed_volume())]
    volumes.append(abs(result.surface.signed_volume()))
    for name, d, v in (("start", before, volumes[0]), ("result", after, volumes[1])):
        print(
            f"{name:6s}: Chamfer {d.chamfer / um:.3f} um, Hausdorff {d.hausdorff / um:.3f} um,"
            f" volume error {100 * (v / volume - 1):+.1f} %"
            f" (after removing translation{' and point reflection' if d.reflected else ''})"
        )
    print(f"data misfit {result.misfit_history[0]:.1f} -> {result.misfit_history[-1]:.2f}")
    if output is not None:
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        save_surface(result.surface, folder / "reconstruction.ply", unit=um)
        save_surface(target, folder / "target.ply", unit=um)
        history = {
            "loss": result.loss_history,
            "misfit": result.misfit_history,
            "chamfer_um": [before.chamfer / um, after.chamfer / um],
            "hausdorff_um": [before.hausdorff / um, after.hausdorff / um],
            "volume_um3": [volume / um**3] + [v / um**3 for v in volumes],
            "seconds": seconds,
        }
        (folder / "history.json").write_text(json.dumps(history, indent=1))
        start = space.surface(torch.zeros(6))
        render(
            folder / "ellipsoid.png",
            [
                ("truth", target, False),
                ("start", start, before.reflected),
                ("result", result.surface, after.reflected),
            ],
        )
    return {"before": before, "after": after, "result": result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="coarse meshes, few iterations")
    parser.add_argument("--output", default=None, help="folder for PLY, history and PNG")
    parser.add_argument("--snr", type=float, default=None, help="SNR (default: noise-free)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    main(small=args.small, output=args.output, snr=args.snr)
