"""Free-form shape reconstruction from diffusion signals, and shape distances.

The shape is a point of a ``SurfaceShapeSpace`` (normal displacements of a reference mesh
in its smoothest Laplacian modes) or of a ``TubeShapeSpace`` (radius and centreline
profiles of a straight capped cylinder, for axons).  The loss is

    sum_m (E_m(c) - data_m)^2 / (2 sigma^2) + smoothness * roughness(c)
        + volume_weight * (V(c) / reference_volume - 1)^2,

with E the matrix-formalism signal of the deformed mesh (eigen-data differentiable with
respect to the surface, ``mf_dmri.fem.differentiable``), minimised by Adam.  A step that
would fold the mesh (an inverted tetrahedron, or one squeezed below ``MIN_VOLUME_RATIO`` of
its reference volume) is shortened by halving until it does not.  With ``remesh_quality``
set (Adam only), a mesh whose smallest radius ratio drops below it is re-tetrahedralised
inside the current surface and the optimisation goes on (``mf_dmri.inverse.remesh``).

What the signal cannot see (docs/inverse.md): the position of the shape (translation) and,
for PGSE and any waveform whose signal is even in the gradient, its point reflection
x -> -x.  Distances to a target are therefore reported after removing both.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.fem.differentiable import surface_driven_eigenbasis
from mf_dmri.geometry import SurfaceMesh
from mf_dmri.inverse.protocol import as_piece_groups
from mf_dmri.inverse.remesh import min_radius_ratio, remeshed_space
from mf_dmri.inverse.shape_space import SurfaceShapeSpace
from mf_dmri.inverse.tube_space import TubeShapeSpace
from mf_dmri.plausibility import UNCHECKED
from mf_dmri.signal import Compartment, signal

logger = logging.getLogger(__name__)

#: smallest accepted volume of a deformed tetrahedron relative to its reference volume [-]
MIN_VOLUME_RATIO = 0.05


@dataclass(frozen=True)
class ReconstructionResult:
    """Result of ``reconstruct_shape``.

    Args:
        coefficients: (K,) final shape coefficients [-].
        surface: the reconstructed surface [m].
        predicted: (M,) normalised signal of the reconstruction [-].
        loss_history: total loss per iteration [-].
        misfit_history: data term per iteration [-].
        step_reductions: how often a folding step was undone.
        remeshes: how often the volume mesh was re-tetrahedralised (``remesh_quality``).
        quality_history: smallest radius ratio [-] of the volume mesh after each Adam step
            (before any remesh at that step); empty unless ``remesh_quality`` is set.
    """

    coefficients: torch.Tensor
    surface: SurfaceMesh
    predicted: torch.Tensor
    loss_history: tuple[float, ...]
    misfit_history: tuple[float, ...]
    step_reductions: int
    remeshes: int = 0
    quality_history: tuple[float, ...] = ()


@dataclass(frozen=True)
class ShapeDistance:
    """Distances between two surfaces after removing translation and point reflection.

    Args:
        chamfer: mean of the two mean nearest-neighbour distances [m].
        hausdorff: largest nearest-neighbour distance either way [m].
        reflected: whether the point reflection of the first shape matched better.
    """

    chamfer: float
    hausdorff: float
    reflected: bool


def _points(surface: SurfaceMesh, samples: int, seed: int) -> np.ndarray:
    """Surface samples: the vertices plus area-uniform random points on the triangles."""
    vertices, faces = np.asarray(surface.vertices), np.asarray(surface.faces)
    triangles = vertices[faces]
    areas = np.linalg.norm(
        np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1
    )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(faces), size=samples, p=areas / areas.sum())
    u, v = rng.random((2, samples))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = triangles[chosen]
    points = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    return np.concatenate([vertices, points])


def _centroid(surface: SurfaceMesh) -> np.ndarray:
    """Volume centroid of a closed, outward-oriented surface [m]."""
    v = np.asarray(surface.vertices)[np.asarray(surface.faces)]
    signed = np.einsum("fi,fi->f", v[:, 0], np.cross(v[:, 1], v[:, 2])) / 6
    return (signed[:, None] * v.sum(1) / 4).sum(0) / signed.sum()


def _to_surface(points: np.ndarray, surface: SurfaceMesh, offset: np.ndarray) -> np.ndarray:
    """Distances [m] from ``points`` to the triangles of ``surface`` shifted by ``offset``
    (computed in units of the surface size: trimesh's tolerances assume order-one sizes)."""
    import trimesh

    vertices = np.asarray(surface.vertices) - offset
    scale = float(np.abs(vertices).max())
    mesh = trimesh.Trimesh(vertices / scale, np.asarray(surface.faces), process=False)
    return trimesh.proximity.closest_point(mesh, points / scale)[1] * scale


def shape_distance(
    first: SurfaceMesh, second: SurfaceMesh, *, samples: int = 4000, seed: int = 0
) -> ShapeDistance:
    """Chamfer and Hausdorff distances [m] between two closed surfaces after moving both
    volume centroids to the origin and trying ``first`` and its point reflection.

    Distances are from points sampled on each surface (vertices plus ``samples`` random
    points) to the triangles of the other (exact point-to-triangle distances)."""
    centre_a, centre_b = _centroid(first), _centroid(second)
    a = _points(first, samples, seed) - centre_a
    b = _points(second, samples, seed + 1) - centre_b
    best = None
    for reflected in (False, True):
        sign = -1.0 if reflected else 1.0
        mirrored = SurfaceMesh(
            sign * (np.asarray(first.vertices) - centre_a), np.asarray(first.faces)
        )
        ab = _to_surface(sign * a, second, centre_b)
        ba = _to_surface(b, mirrored, np.zeros(3))
        result = ShapeDistance(0.5 * (ab.mean() + ba.mean()), max(ab.max(), ba.max()), reflected)
        if best is None or result.chamfer < best.chamfer:
            best = result
    return best


def shape_signal(
    space: SurfaceShapeSpace | TubeShapeSpace,
    coefficients: torch.Tensor,
    groups,
    diffusivity: float,
    num_modes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised signal (M,) [-], volume [m^3]) of the shape with ``coefficients``."""
    basis = surface_driven_eigenbasis(
        space.vertices(coefficients), space.extension, num_modes=num_modes
    )
    compartment = Compartment(basis, diffusivity, plausibility=UNCHECKED)
    values = torch.cat([signal(compartment, g).real for g in groups])
    return values, basis.volume


def reconstruct_shape(
    space: SurfaceShapeSpace | TubeShapeSpace,
    protocol,
    data: torch.Tensor,
    *,
    diffusivity: float,
    sigma: float = 0.01,
    num_modes: int = 30,
    smoothness: float = 1e-2,
    volume_weight: float = 0.0,
    reference_volume: float | None = None,
    iterations: int = 100,
    learning_rate: float = 0.02,
    initial: torch.Tensor | None = None,
    step_scale: torch.Tensor | None = None,
    optimiser: str = "adam",
    remesh_quality: float | None = None,
) -> ReconstructionResult:
    """Recover a shape from its normalised signal ``data`` (M,) [-].

    Args:
        space: the shape space (reference mesh and modes): a ``SurfaceShapeSpace`` or a
            ``TubeShapeSpace``.
        protocol: the acquisition (anything ``as_piece_groups`` accepts).
        data: measured normalised signals (M,) [-], same order as the protocol.
        diffusivity: intrinsic diffusivity inside the shape [m^2/s] (known).
        sigma: noise level of ``data`` [-] (weights the data term against the penalties).
        num_modes: Laplace eigenmodes of the deformed mesh used for the signal.
        smoothness: weight of the roughness penalty [-].
        volume_weight: weight of the volume penalty [-] (needs ``reference_volume``).
        reference_volume: prior volume [m^3] for the volume penalty.
        iterations: Adam iterations, or L-BFGS iterations (each up to 2 evaluations on
            average, with a strong Wolfe line search).
        learning_rate: Adam step in the coefficients [-] (L-BFGS: initial step factor).
        initial: starting coefficients (K,) [-]; zero (the reference shape) by default.
        step_scale: optional (K,) positive relative step per coefficient [-]: Adam runs on
            ``c / step_scale``, so coefficient k moves by about ``learning_rate *
            step_scale[k]`` per step (for coefficients of different natural sizes).
        optimiser: ``"adam"`` or ``"lbfgs"``.  Adam moves every coefficient at about the
            same rate whatever its gradient, so coefficients the data hardly constrain
            drift; L-BFGS follows the gradient and curvature (preferred when some modes
            enter the signal only at second order, docs/inverse.md).  With L-BFGS a trial
            point whose mesh would fold gets a large loss, so the line search backs off.
        remesh_quality: optional threshold in (0, 1) on the smallest radius ratio
            3 r_in / R_circ [-] of the deformed volume mesh (Adam only): below it, the
            current surface is re-tetrahedralised and the harmonic extension rebuilt on the
            new mesh (same coefficients, same surface; ``mf_dmri.inverse.remesh``).  None
            (default): never remesh.

    The returned shape is the evaluated point with the lowest total loss (Adam need not
    decrease the loss monotonically).  Histories hold one entry per evaluation.
    """
    groups = as_piece_groups(protocol)
    data = torch.as_tensor(data, dtype=DTYPE)
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data contain NaN or infinite values")
    if volume_weight > 0 and not (reference_volume and reference_volume > 0):
        raise ValueError("volume_weight > 0 needs a positive reference_volume [m^3]")
    for name, value in (
        ("sigma", sigma),
        ("diffusivity", diffusivity),
        ("learning_rate", learning_rate),
    ):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be positive and finite")
    if smoothness < 0 or volume_weight < 0:
        raise ValueError("penalty weights must be >= 0")
    if remesh_quality is not None:
        if not 0 < remesh_quality < 1:
            raise ValueError("remesh_quality must be a radius ratio in (0, 1), or None")
        if optimiser != "adam":
            raise ValueError("remesh_quality needs optimiser='adam' (L-BFGS keeps one mesh)")
    start = (
        torch.zeros(space.num_modes, dtype=DTYPE)
        if initial is None
        else torch.as_tensor(initial, dtype=DTYPE)
    )
    scale = (
        torch.ones(space.num_modes, dtype=DTYPE)
        if step_scale is None
        else torch.as_tensor(step_scale, dtype=DTYPE)
    )
    if scale.shape != start.shape or not bool((scale > 0).all()):
        raise ValueError(f"step_scale must be {space.num_modes} positive numbers")
    variables = (start / scale).clone().requires_grad_(True)
    current = {"space": space}  # replaced by remeshing

    def loss_terms(c):
        predicted, volume = shape_signal(current["space"], c, groups, diffusivity, num_modes)
        if predicted.shape != data.shape:
            raise ValueError(
                f"the protocol has {predicted.numel()} measurements, the data {data.numel()}"
            )
        misfit = ((predicted - data) ** 2).sum() / (2 * sigma**2)
        total = misfit + smoothness * current["space"].roughness(c)
        if volume_weight > 0:
            total = total + volume_weight * (volume / reference_volume - 1) ** 2
        return total, misfit, predicted

    if optimiser not in ("adam", "lbfgs"):
        raise ValueError(f"optimiser must be 'adam' or 'lbfgs', got {optimiser!r}")
    losses, misfits, best = [], [], [math.inf, start]

    def evaluate():
        total, misfit, _ = loss_terms(scale * variables)
        total.backward()
        losses.append(float(total.detach()))
        misfits.append(float(misfit.detach()))
        if losses[-1] < best[0]:
            best[:] = [losses[-1], (scale * variables).detach().clone()]
        return total

    quality: list[float] = []
    if optimiser == "lbfgs":
        reductions = _run_lbfgs(space, variables, scale, evaluate, iterations, learning_rate)
    else:
        reductions = _run_adam(
            current, variables, scale, evaluate, iterations, learning_rate, remesh_quality, quality
        )
    final = best[1]
    with torch.no_grad():
        _, _, predicted = loss_terms(final)
    return ReconstructionResult(
        coefficients=final,
        surface=current["space"].surface(final),
        predicted=predicted.detach(),
        loss_history=tuple(losses),
        misfit_history=tuple(misfits),
        step_reductions=reductions,
        remeshes=current.get("remeshes", 0),
        quality_history=tuple(quality),
    )


def _run_adam(
    current, variables, scale, evaluate, iterations, learning_rate, remesh_quality, quality
) -> int:
    """Adam with step halving against folds, and remeshing below ``remesh_quality`` (the
    new space goes to ``current["space"]``, the count to ``current["remeshes"]``, the
    smallest radius ratio after each step to ``quality``); returns the number of halvings."""
    optimiser = torch.optim.Adam([variables], lr=learning_rate)
    reductions = 0
    for _ in range(iterations):
        space = current["space"]
        previous = variables.detach().clone()
        optimiser.zero_grad()
        evaluate()
        optimiser.step()
        halvings = 0
        while _folds(space, (scale * variables).detach()):
            reductions, halvings = reductions + 1, halvings + 1
            with torch.no_grad():
                variables.copy_(previous + 0.5 * (variables - previous))
            if halvings > 30:
                raise FloatingPointError("the mesh folds at every step: lower the learning rate")
        if remesh_quality is not None:
            _keep_quality(current, (scale * variables).detach(), remesh_quality, quality)
    return reductions


def _keep_quality(current, coefficients, threshold, quality) -> None:
    """Record the mesh quality at ``coefficients``; remesh when it is below ``threshold``."""
    quality.append(min_radius_ratio(current["space"], coefficients))
    if quality[-1] >= threshold:
        return
    space = remeshed_space(current["space"], coefficients)
    fresh = min_radius_ratio(space, coefficients)
    if fresh < threshold:
        raise ValueError(
            f"a fresh mesh of the current surface has radius ratio {fresh:.3g} < "
            f"remesh_quality {threshold:g}: lower remesh_quality"
        )
    logger.info("remeshed: radius ratio %.3g -> %.3g", quality[-1], fresh)
    current["space"], current["remeshes"] = space, current.get("remeshes", 0) + 1


def _run_lbfgs(space, variables, scale, evaluate, iterations, learning_rate) -> int:
    """L-BFGS (strong Wolfe); folded trial points get a large loss.  Returns their count."""
    optimiser = torch.optim.LBFGS(
        [variables],
        lr=learning_rate,
        max_iter=iterations,
        max_eval=2 * iterations,
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    state = {"folded": 0, "first": None}

    def closure():
        optimiser.zero_grad()
        if _folds(space, (scale * variables).detach()):
            state["folded"] += 1
            variables.grad = torch.zeros_like(variables)
            return torch.tensor(10 * state["first"] + 1e3, dtype=DTYPE)
        total = evaluate()
        if state["first"] is None:
            state["first"] = abs(float(total.detach()))
        return total

    optimiser.step(closure)
    return state["folded"]


def _folds(space: SurfaceShapeSpace | TubeShapeSpace, coefficients: torch.Tensor) -> bool:
    """Whether the shape's harmonic-extension mesh has an inverted tetrahedron or one
    squeezed below ``MIN_VOLUME_RATIO`` of its reference volume (the eigen-solver loses
    accuracy on such elements, so the step is shortened instead)."""
    nodes = space.extension(space.vertices(coefficients)).detach().numpy()
    ratio = _signed_volumes(nodes, space.extension.elements) / _signed_volumes(
        space.extension.reference_nodes, space.extension.elements
    )
    return bool((ratio < MIN_VOLUME_RATIO).any())


def _signed_volumes(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Six times the signed volume of each tetrahedron [m^3]."""
    tets = nodes[elements]
    return np.einsum(
        "ei,ei->e",
        tets[:, 1] - tets[:, 0],
        np.cross(tets[:, 2] - tets[:, 0], tets[:, 3] - tets[:, 0]),
    )
