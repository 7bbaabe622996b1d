"""Shared set-up of the free-form axon reconstructions (reconstruct_beaded_axon.py,
reconstruct_undulating_axon.py) and the output writer used by all reconstruction examples.

Protocol (``shape_protocol``): PGSE, 30 directions on a hemisphere (Fibonacci), shells
delta/Delta [ms] at G [mT/m]: 5/15 at 150 and 300, 10/30 at 100 and 300, 10/60 at 100 and
300, 20/60 at 150 (b = 537 to 36,500 s/mm^2; 210 measurements); short and long timings, weak
and strong gradients.  Noise: Gaussian on the real, phase-corrected normalised signal,
sigma = 1 / SNR (``add_noise``).  The target signal comes from an independent, finer
tetrahedral mesh of the generator's surface.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mf_dmri.fem import mesh_eigenbasis
from mf_dmri.geometry import SurfaceMesh, cylinder, tetrahedralize
from mf_dmri.inverse import PGSEProtocol
from mf_dmri.inverse.reconstruct import reconstruct_shape, shape_distance
from mf_dmri.inverse.tube_space import TubeShapeSpace
from mf_dmri.io.mesh import save_surface
from mf_dmri.sequences import fibonacci_sphere
from mf_dmri.signal import Compartment, signal
from mf_dmri.units import ms, mT_per_m, um

DIFFUSIVITY = 2e-9  # [m^2/s]
SHELLS = [(5, 15, 150), (5, 15, 300), (10, 30, 100), (10, 30, 300), (10, 60, 100), (10, 60, 300)]
SHELLS += [(20, 60, 150)]  # (delta [ms], Delta [ms], G [mT/m])
SMALL_SHELLS = [(5, 15, 300), (10, 30, 300), (10, 60, 300)]


def shape_protocol(small: bool) -> PGSEProtocol:
    """The PGSE protocol above (small: 10 directions, 3 shells)."""
    shells = SMALL_SHELLS if small else SHELLS
    return PGSEProtocol(
        [d * ms for d, _, _ in shells],
        [big * ms for _, big, _ in shells],
        [g * mT_per_m for _, _, g in shells],
        fibonacci_sphere(10 if small else 30, hemisphere=True),
    )


def target_signal(target: SurfaceMesh, protocol, length_scale: float, cutoff: float):
    """Normalised signal [-] of ``target`` on its own tetrahedral mesh (edge length_scale
    [m], modes up to eigenvalue ``cutoff`` [1/m^2])."""
    mesh = tetrahedralize(target, length_scale=length_scale)
    # P1, the elements of the differentiable model that is fitted (P1 only)
    basis = mesh_eigenbasis(mesh.nodes, mesh.elements, max_eigenvalue=cutoff, order=1)
    compartment = Compartment(basis, DIFFUSIVITY)
    values = [signal(compartment, g).real for g in protocol.piece_groups()]
    return torch.cat(values).detach(), mesh.n_nodes


def add_noise(data: torch.Tensor, snr: float | None, seed: int) -> tuple[torch.Tensor, float]:
    """(data with Gaussian noise of sigma = 1 / snr, sigma); noise-free when snr is None
    (sigma 0.01 then only weights the data term against the penalties)."""
    if snr is None:
        return data, 0.01
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(data.shape, generator=generator, dtype=torch.float64) / snr
    return data + noise, 1.0 / snr


def tube_space(
    radius: float,
    length: float,
    small: bool,
    radius_modes: int,
    centreline_modes: int,
    fine: bool = False,
) -> TubeShapeSpace:
    """Tube shape space on a straight capped cylinder (radius, length [m]); ``fine``: a
    finer reference mesh (24 segments, 0.65 um edges instead of 20 and 0.8 um)."""
    segments = 12 if small else (24 if fine else 20)
    reference = cylinder(radius, length, segments=segments)
    edge = 1.4 if small else (0.65 if fine else 0.8)
    mesh = tetrahedralize(reference, length_scale=edge * um)
    return TubeShapeSpace.from_volume_mesh(
        mesh.nodes,
        mesh.elements,
        radius=radius,
        radius_modes=radius_modes,
        centreline_modes=centreline_modes,
    )


@dataclass(frozen=True)
class Reconstruction:
    """Summary of one run: distances [m], volumes [m^3], timing [s] and the result."""

    name: str
    snr: float | None
    before: object
    after: object
    best_possible: object
    target_volume: float
    start_volume: float
    result_volume: float
    seconds: float
    measurements: int
    result: object

    def lines(self) -> list[str]:
        noise = "noise-free" if self.snr is None else f"SNR {self.snr:g} (Gaussian)"
        reduction = 1 - self.after.chamfer / self.before.chamfer
        rows = [f"{self.name}, {noise}, {self.measurements} measurements, {self.seconds:.0f} s"]
        for label, d, v in (
            ("start", self.before, self.start_volume),
            ("result", self.after, self.result_volume),
        ):
            rows.append(
                f"  {label:6s}: Chamfer {d.chamfer / um:.3f} um, Hausdorff {d.hausdorff / um:.3f}"
                f" um, volume error {100 * (v / self.target_volume - 1):+.1f} %"
                f"{' (reflected)' if d.reflected else ''}"
            )
        rows.append(
            f"  Chamfer reduction {100 * reduction:.0f} % (best the shape space can do: "
            f"{self.best_possible.chamfer / um:.3f} um)"
        )
        history = self.result.misfit_history
        rows.append(f"  data misfit {history[0]:.1f} -> {history[-1]:.2f}")
        return rows


def radius_steps(space: TubeShapeSpace, radius_step: float) -> torch.Tensor:
    """Adam step scales: ``radius_step`` for the radius modes (relative radius changes are
    small numbers), 1 for the centreline modes (displacements in units of R0)."""
    scale = torch.ones(space.num_modes, dtype=torch.float64)
    scale[: space.radius_modes] = radius_step
    return scale


def run(name, space, target, best, protocol, data, sigma, snr, iterations, stages=(), **options):
    """Reconstruct from the reference shape (zero coefficients); distances to ``target``.

    ``stages``: coarse-to-fine (radius_modes, centreline_modes) counts fitted first, each
    from the previous result, before the full ``space`` (``iterations`` each); the loss
    histories are concatenated.  ``step_scale`` in options is a function of the space."""
    start_surface = space.surface(torch.zeros(space.num_modes))
    step_scale = options.pop("step_scale")
    tic = time.perf_counter()
    spaces = [space.with_modes(*counts) for counts in stages] + [space]
    coefficients, previous, losses, misfits = None, None, [], []
    for current in spaces:
        initial = None if previous is None else current.coefficients_from(previous, coefficients)
        result = reconstruct_shape(
            current,
            protocol,
            data,
            diffusivity=DIFFUSIVITY,
            sigma=sigma,
            iterations=iterations,
            initial=initial,
            step_scale=step_scale(current),
            **options,
        )
        coefficients, previous = result.coefficients, current
        losses += result.loss_history
        misfits += result.misfit_history
    result = dataclasses.replace(result, loss_history=tuple(losses), misfit_history=tuple(misfits))
    seconds = time.perf_counter() - tic
    return Reconstruction(
        name=name,
        snr=snr,
        before=shape_distance(start_surface, target),
        after=shape_distance(result.surface, target),
        best_possible=shape_distance(space.surface(best), target),
        target_volume=abs(target.signed_volume()),
        start_volume=abs(start_surface.signed_volume()),
        result_volume=abs(result.surface.signed_volume()),
        seconds=seconds,
        measurements=int(data.numel()),
        result=result,
    )


def aligned(surface: SurfaceMesh, reflect: bool) -> np.ndarray:
    """Vertices [um] with the volume centroid at the origin (point-reflected if asked)."""
    from mf_dmri.inverse.reconstruct import _centroid

    vertices = (np.asarray(surface.vertices) - _centroid(surface)) / um
    return -vertices if reflect else vertices


def render(path: Path, panels: list[tuple[str, SurfaceMesh, bool]]) -> None:
    """PNG (100 dpi) of several surfaces side by side (matplotlib plot_trisurf), each
    centred at its centroid (and point-reflected where the flag says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(3.2 * len(panels), 3.4), dpi=100)
    points = [aligned(s, r) for _, s, r in panels]
    half = max(np.abs(p).max() for p in points)
    for k, ((title, surface, _), vertices) in enumerate(zip(panels, points, strict=True)):
        axes = figure.add_subplot(1, len(panels), k + 1, projection="3d")
        axes.plot_trisurf(
            vertices[:, 0],
            vertices[:, 1],
            vertices[:, 2],
            triangles=np.asarray(surface.faces),
            color="tab:orange",
            edgecolor="k",
            linewidth=0.1,
            alpha=0.9,
        )
        axes.set(xlim=(-half, half), ylim=(-half, half), zlim=(-half, half), title=title)
        axes.set_box_aspect((1, 1, 1))
        axes.view_init(elev=15, azim=-60)
        axes.set_xlabel("x [um]", fontsize=7)
        axes.set_zlabel("z [um]", fontsize=7)
        axes.tick_params(labelsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_outputs(folder: Path, tag: str, target: SurfaceMesh, start: SurfaceMesh, run_):
    """PLY of the result (and of the target), loss history (JSON) and the PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    save_surface(run_.result.surface, folder / f"{tag}_reconstruction.ply", unit=um)
    save_surface(target, folder / f"{tag}_target.ply", unit=um)
    history = {
        "loss": run_.result.loss_history,
        "misfit": run_.result.misfit_history,
        "chamfer_um": [run_.before.chamfer / um, run_.after.chamfer / um],
        "hausdorff_um": [run_.before.hausdorff / um, run_.after.hausdorff / um],
        "volume_um3": [
            run_.target_volume / um**3,
            run_.start_volume / um**3,
            run_.result_volume / um**3,
        ],
        "seconds": run_.seconds,
        "coefficients": run_.result.coefficients.tolist(),
    }
    (folder / f"{tag}_history.json").write_text(json.dumps(history, indent=1))
    render(
        folder / f"{tag}.png",
        [
            ("truth", target, False),
            ("start", start, run_.before.reflected),
            ("result", run_.result.surface, run_.after.reflected),
        ],
    )
