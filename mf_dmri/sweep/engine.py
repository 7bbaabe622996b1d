"""Run a sweep: one eigenbasis per geometry, every chunk of that geometry from it.

The engine never touches files itself: results go to a ``ChunkSink`` (``mf_dmri.io.
sweep_store.SweepStore`` writes them) and eigenbases may come from a ``BasisCache``
(``mf_dmri.io.sweep_store.DiskBasisCache``).  Chunks already in the sink are skipped, so
an interrupted sweep resumes where it stopped.  A coupled geometry point (tissue values
inside its eigenproblem) is solved for itself from its shape's ``NestedMesh`` (a local run
keeps the last mesh for the next point of the same shape parameters) and never cached:
the cache stores ``ProductDomain`` bases only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch

from mf_dmri.coupled import CoupledBasis
from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.plausibility import CHECKED, Plausibility
from mf_dmri.signal.propagation import DEFAULT_CHUNK_BYTES
from mf_dmri.sweep.batched import GeometrySimulator
from mf_dmri.sweep.coupled_simulator import CoupledSimulator
from mf_dmri.sweep.plan import Chunk, GeometryPoint, SweepPlan, build_plan, tissue_value
from mf_dmri.sweep.progress import ProgressCallback, ProgressTracker
from mf_dmri.sweep.registry import DEFAULT_REGISTRY, GeometryRegistry
from mf_dmri.sweep.spec import SweepSpec

logger = logging.getLogger(__name__)


class BasisCache(Protocol):
    """Where solved geometries are kept between runs (keyed by the geometry point)."""

    def get(self, point: GeometryPoint) -> dict[str, ProductDomain] | None: ...

    def put(self, point: GeometryPoint, domains: dict[str, ProductDomain]) -> None: ...


class ChunkSink(Protocol):
    """Where finished chunks go; ``completed()`` lists those already stored."""

    def completed(self) -> set[int]: ...

    def write(self, chunk: Chunk, signals: np.ndarray, error_bars: np.ndarray) -> None: ...


@dataclass(frozen=True)
class SweepResult:
    """What a run did.

    Args:
        rows: rows of the parameter table.
        measurements: measurements per row.
        chunks_total: chunks of the sweep.
        chunks_computed: chunks computed by this run.
        rows_computed: rows computed by this run.
        chunks_skipped: chunks found already stored (resumed).
        basis_solves: geometries built by their builder in this run (eigen-solves).
        cache_hits: geometries loaded from the basis cache instead.
        elapsed: wall time of this run [s].
        device: torch device used.
        executor: 'local' or 'ray'.
    """

    rows: int
    measurements: int
    chunks_total: int
    chunks_computed: int
    rows_computed: int
    chunks_skipped: int
    basis_solves: int
    cache_hits: int
    elapsed: float
    device: str
    executor: str

    @property
    def signals_per_second(self) -> float:
        """Signals computed per second in this run [1/s]."""
        if self.elapsed <= 0:
            return 0.0
        return self.rows_computed * self.measurements / self.elapsed


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' or None: CUDA when available, else CPU; otherwise the device named."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device {str(device)!r} is not a torch device: use 'auto', 'cpu', 'cuda' or "
            "'cuda:N' (N: the GPU index)"
        ) from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r}: the sweep runs on 'cpu' or 'cuda' only")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device; use 'cpu'")
    return resolved


def solve_geometry(
    point: GeometryPoint,
    registry: GeometryRegistry,
    cache: BasisCache | None,
    meshes: dict | None = None,
    plausibility: Plausibility = CHECKED,
) -> tuple[dict[str, ProductDomain] | CoupledBasis, bool]:
    """The compartments of ``point`` (a ``CoupledBasis`` for a coupled shape) and whether
    they were solved (False: cache hit; coupled points are never cached).  ``meshes``
    (optional, one entry) keeps a coupled shape's mesh for the next point that shares it;
    ``plausibility``: the sweep's override of the range checks."""
    builder = registry[point.shape]
    options = point.options | _file_option(point)
    if builder.coupled:
        meshes = {} if meshes is None else meshes
        return _solve_coupled(point, builder, options, meshes, plausibility), True
    if cache is not None:
        domains = cache.get(point)
        if domains is not None:
            return domains, False
    start = time.perf_counter()
    domains = builder(point.parameters, options, plausibility)
    logger.debug(
        "geometry %d (%s) solved in %.2f s", point.index, point.shape, time.perf_counter() - start
    )
    if cache is not None:
        cache.put(point, domains)
    return domains, True


def _solve_coupled(
    point: GeometryPoint, builder, options, meshes: dict, plausibility: Plausibility
) -> CoupledBasis:
    """Mesh ``point``'s shape (or reuse the mesh kept in ``meshes``) and solve its coupled
    eigenbasis for the point's tissue values."""
    key = replace(point, tissue={}).key()
    if key not in meshes:
        meshes.clear()
        meshes[key] = builder(point.parameters, options, plausibility)
    start = time.perf_counter()
    length_scale = point.parameters["length_scale"]
    basis = meshes[key].basis(point.tissue, length_scale, point.shape, plausibility)
    logger.debug("coupled point %d solved in %.2f s", point.index, time.perf_counter() - start)
    return basis


def _file_option(point: GeometryPoint) -> dict[str, str]:
    return {"file": point.file} if point.file else {}


def geometry_chunks(
    plan: SweepPlan,
    geometry: int,
    chunks: Sequence[Chunk],
    *,
    registry: GeometryRegistry = DEFAULT_REGISTRY,
    cache: BasisCache | None = None,
    device: torch.device | str = "cpu",
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    meshes: dict | None = None,
) -> Iterator[tuple[Chunk, np.ndarray, np.ndarray, bool]]:
    """Solve geometry ``geometry`` once and yield ``(chunk, signals (rows, M), error bars
    (rows, M), solved)`` for each of its ``chunks``; ``solved`` is True on the first yield
    if an eigen-solve ran (False for a cache hit) and False afterwards.  The error bars are
    those of :meth:`GeometrySimulator.signals_with_error` at the extreme diffusivities of
    the sweep (for a coupled point, those of its coupled basis).  ``meshes``: see
    :func:`solve_geometry`."""
    checks = plan.spec.plausibility
    domains, solved = solve_geometry(plan.geometries[geometry], registry, cache, meshes, checks)
    if isinstance(domains, CoupledBasis):
        simulator = CoupledSimulator(
            domains,
            plan.measurements,
            normalize=plan.spec.normalize,
            device=device,
            max_chunk_bytes=max_chunk_bytes,
        )
    else:
        _check_compartments(plan, domains)
        simulator = GeometrySimulator(
            domains,
            plan.measurements,
            normalize=plan.spec.normalize,
            device=device,
            max_chunk_bytes=max_chunk_bytes,
            diffusivity_ranges=diffusivity_ranges(plan, domains),
            plausibility=checks,
        )
    for chunk in chunks:
        if chunk.geometry != geometry:
            raise ValueError(f"chunk {chunk.index} belongs to geometry {chunk.geometry}")
        tissue = {k: v[chunk.tissue_start : chunk.tissue_stop] for k, v in plan.tissue.items()}
        signals, bars = simulator.signals_with_error(tissue)
        yield chunk, signals.cpu().numpy(), bars.cpu().numpy(), solved
        solved = False


def diffusivity_ranges(plan: SweepPlan, domains) -> dict[str, tuple[float, float]]:
    """Smallest and largest diffusivity [m^2/s] of each compartment over the sweep."""
    ranges = {}
    for name in domains:
        values = tissue_value(plan.tissue, name, "diffusivity")
        if values is not None:
            ranges[name] = (float(np.min(values)), float(np.max(values)))
    return ranges


def _check_compartments(plan: SweepPlan, domains: dict[str, ProductDomain]) -> None:
    named = {k.rsplit(".", 1)[0] for k in plan.tissue if "." in k}
    unknown = named - set(domains)
    if unknown:
        raise ValueError(
            f"[tissue] names compartments {sorted(unknown)} that the geometry lacks; "
            f"its compartments are {sorted(domains)}"
        )


def pending_by_geometry(plan: SweepPlan, done: set[int]) -> dict[int, list[Chunk]]:
    """Chunks not yet stored, grouped by geometry (in row order)."""
    pending: dict[int, list[Chunk]] = {}
    for chunk in plan.chunks:
        if chunk.index not in done:
            pending.setdefault(chunk.geometry, []).append(chunk)
    return pending


def run_sweep(
    spec: SweepSpec | SweepPlan,
    sink: ChunkSink,
    *,
    registry: GeometryRegistry = DEFAULT_REGISTRY,
    cache: BasisCache | None = None,
    device: str | torch.device | None = "cpu",
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: ProgressCallback | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    ray_workers: int | None = None,
) -> SweepResult:
    """Compute every chunk of the sweep not yet in ``sink`` and write it there.

    Args:
        spec: the sweep (or its expanded plan).
        sink: receives each finished chunk; its ``completed()`` chunks are skipped.
        registry: geometry builders.
        cache: optional eigenbasis cache (geometries found there are not solved again).
        device: torch device, or 'auto' / None for CUDA when present.
        max_chunk_bytes: memory budget of one batch of matrix exponentials [bytes].
        progress: called after every chunk with a ``ProgressUpdate``.
        executor: 'local' (this process) or 'ray' (one task per geometry).
        ray_address: address of a running Ray cluster (None: start a local one).
        ray_workers: CPUs of the local Ray instance (None: Ray's default).
    """
    plan = spec if isinstance(spec, SweepPlan) else build_plan(spec, registry)
    resolved = resolve_device(device)
    done = sink.completed() & {c.index for c in plan.chunks}
    pending = pending_by_geometry(plan, done)
    tracker = ProgressTracker(
        plan.num_rows,
        len(plan.chunks),
        plan.measurements.count,
        rows_done=sum(plan.chunks[i].size for i in done),
        chunks_done=len(done),
        callback=progress,
    )
    start = time.perf_counter()
    counts = {"solves": 0, "hits": 0, "computed": 0, "rows": 0}

    def accept(chunk: Chunk, signals: np.ndarray, bars: np.ndarray, solved: bool | None) -> None:
        sink.write(chunk, signals, bars)
        counts["computed"] += 1
        counts["rows"] += chunk.size
        if solved is not None:
            counts["solves" if solved else "hits"] += 1
        tracker.update(chunk.size)

    if executor == "local":
        meshes: dict = {}
        for geometry, chunks in pending.items():
            for i, (chunk, signals, bars, solved) in enumerate(
                geometry_chunks(
                    plan,
                    geometry,
                    chunks,
                    registry=registry,
                    cache=cache,
                    device=resolved,
                    max_chunk_bytes=max_chunk_bytes,
                    meshes=meshes,
                )
            ):
                accept(chunk, signals, bars, solved if i == 0 else None)
    elif executor == "ray":
        from mf_dmri.sweep.distributed import run_on_ray

        run_on_ray(
            plan,
            pending,
            accept,
            registry=registry,
            cache=cache,
            device=resolved,
            max_chunk_bytes=max_chunk_bytes,
            address=ray_address,
            workers=ray_workers,
        )
    else:
        raise ValueError(f"executor must be 'local' or 'ray', got {executor!r}")
    return SweepResult(
        rows=plan.num_rows,
        measurements=plan.measurements.count,
        chunks_total=len(plan.chunks),
        chunks_computed=counts["computed"],
        rows_computed=counts["rows"],
        chunks_skipped=len(done),
        basis_solves=counts["solves"],
        cache_hits=counts["hits"],
        elapsed=time.perf_counter() - start,
        device=str(resolved),
        executor=executor,
    )
