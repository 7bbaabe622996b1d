"""Two kernels of the real-cell path, each against the method it replaced, side by side in
one run on a real navis neuron (the previous methods are kept here only, for this
comparison):

1. the bounded thickness cast (``local_thickness(surface, reach=...)``, used by the remesh
   targets and netgen's local sizes): the library takes as candidates the triangles whose
   bounding boxes meet the boxes of pieces of each ray's segment (an R-tree); before, every
   triangle within a ball of radius ``reach`` (+ its own size) around the vertex.  Same
   values asserted; CPU seconds and ray-triangle pairs.
2. the block Lanczos solve of the P2 eigenbasis (``lowest_spectrum``, every mode below the
   cutoff of ``length_scale`` 3 um) in scikit-fem's numbering (vertex unknowns, then the
   edge ones) and in the reverse Cuthill-McKee numbering ``solve_eigenbasis`` now uses
   (``mf_dmri.fem.numbering``): CPU seconds, the solver's own timings, and the largest
   eigenvalue difference; and one sparse product ``M X`` with 16 columns in both.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_real_cell_kernels.py [--cell 722817260]
       [--skip-eigen] [--output benchmarks/results/real_cell_kernels.md]
The surface is prepared as in bench_real_cells.py ("mesh" settings): repair, remesh, netgen.
"""

from __future__ import annotations

import argparse
import math
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ball_hits(origins, directions, triangles, near, reach):
    """The previous candidates of the bounded cast: triangles within ``reach`` + their
    radius of each vertex (k-d tree of centres), wider triangles against the vertices near
    them; returns (nearest hit within reach or inf, pairs tested)."""
    from scipy.spatial import cKDTree

    from mf_dmri.geometry.thickness import ray_triangle_parameters

    centres = triangles.mean(axis=1)
    radii = np.linalg.norm(triangles - centres[:, None], axis=2).max(axis=1)
    best, pairs = np.full(len(origins), np.inf), 0

    def test(ray, face):
        t = ray_triangle_parameters(origins[ray], directions[ray], triangles[face])
        valid = (t > near[ray]) & (t <= reach)
        np.minimum.at(best, ray[valid], t[valid])

    small = np.flatnonzero(radii <= reach)
    if len(small):
        tree, limit = cKDTree(centres[small]), reach + radii[small].max()
        for start in range(0, len(origins), 2000):
            found = tree.query_ball_point(origins[start : start + 2000], limit)
            counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
            ray = start + np.repeat(np.arange(len(found)), counts)
            face = small[np.concatenate([np.asarray(c, dtype=np.int64) for c in found])]
            for k in range(0, len(ray), 2_000_000):
                test(ray[k : k + 2_000_000], face[k : k + 2_000_000])
            pairs += len(ray)
    large = np.flatnonzero(radii > reach)
    if len(large):
        near_origins = cKDTree(origins).query_ball_point(centres[large], reach + radii[large])
        counts = np.fromiter(map(len, near_origins), dtype=np.int64, count=len(large))
        ray = np.concatenate([np.asarray(c, dtype=np.int64) for c in near_origins])
        test(ray, np.repeat(large, counts))
        pairs += len(ray)
    return best, pairs


def _cast_inputs(surface):
    """Unit-scaled origins, inward directions, triangles and near limits, as
    ``local_thickness`` forms them."""
    import trimesh

    scale = float(np.linalg.norm(np.ptp(surface.vertices, axis=0)))
    unit = trimesh.Trimesh(surface.vertices / scale, surface.faces, process=False)
    edges, lengths = np.asarray(unit.edges_unique), np.asarray(unit.edges_unique_length)
    shortest = np.full(len(unit.vertices), np.inf)
    np.minimum.at(shortest, edges[:, 0], lengths)
    np.minimum.at(shortest, edges[:, 1], lengths)
    origins = np.asarray(unit.vertices)
    return scale, origins, -np.asarray(unit.vertex_normals), unit.triangles, 0.5 * shortest


def thickness_rows(surface, reaches_um) -> list[str]:
    from mf_dmri import units
    from mf_dmri.geometry import local_thickness

    scale, origins, directions, triangles, near = _cast_inputs(surface)
    rows = []
    for reach_um in reaches_um:
        reach = reach_um * units.um
        clock = _cpu()
        new = local_thickness(surface, reach=reach)
        new_cpu = _cpu() - clock
        clock = _cpu()
        hits, pairs = _ball_hits(origins, directions, triangles, near, reach / scale)
        old = np.minimum(hits, reach / scale) * scale
        old_cpu = _cpu() - clock
        difference = float(np.abs(new - old).max())
        rows.append(
            f"| {reach_um:g} | {old_cpu:.2f} ({pairs / 1e6:.1f} M pairs) | {new_cpu:.2f} | "
            f"{old_cpu / new_cpu:.1f}x | {difference:.1e} |"
        )
        print(rows[-1], flush=True)
    return rows


def eigen_rows(mesh) -> tuple[list[str], str]:
    from mf_dmri.fem import assemble_mesh
    from mf_dmri.fem.eigen import CUTOFF_MARGIN, cutoff_eigenvalue
    from mf_dmri.fem.eigensolver import lowest_spectrum
    from mf_dmri.fem.numbering import bandwidth_numbering, renumbered
    from mf_dmri.units import um

    system = assemble_mesh(mesh.nodes, mesh.elements, order=2)
    piece = max(system.pieces, key=lambda p: p.num_dofs)
    threshold = cutoff_eigenvalue(3 * um, None) * (1.0 + CUTOFF_MARGIN)
    numbering = bandwidth_numbering(piece.stiffness)
    variants = {
        "assembled (scikit-fem)": (piece.stiffness, piece.mass),
        "reverse Cuthill-McKee": tuple(
            renumbered(m, numbering) for m in (piece.stiffness, piece.mass)
        ),
    }
    rows, values = [], []
    block = np.random.default_rng(0).standard_normal((piece.num_dofs, 16))
    for name, (stiffness, mass) in variants.items():
        coo = stiffness.tocoo()
        bandwidth = int(np.abs(coo.row - coo.col).max())
        product = block if name.startswith("assembled") else block[numbering]
        clock = time.perf_counter()
        for _ in range(10):
            mass @ product
        product_ms = (time.perf_counter() - clock) * 100
        constant = np.full((piece.num_dofs, 1), 1.0 / math.sqrt(piece.volume))
        clock = _cpu()
        spectrum = lowest_spectrum(
            stiffness,
            mass,
            threshold,
            deflation=constant,
            dimension=3,
            mass_bound=piece.mass_jacobi_bound,
        )
        seconds = _cpu() - clock
        values.append(spectrum.eigenvalues)
        stats = spectrum.stats
        rows.append(
            f"| {name} | {bandwidth:,} | {product_ms:.1f} | {spectrum.eigenvalues.size} | "
            f"**{seconds:.1f}** | {stats.get('orthogonalisation', 0):.1f} | "
            f"{stats.get('rayleigh_ritz', 0):.1f} | {stats.get('solve', 0):.1f} | "
            f"{stats.get('count', 0) + stats.get('factorisation', 0):.1f} |"
        )
        print(rows[-1], flush=True)
    same = values[0].size == values[1].size
    gap = float(np.abs(values[0] - values[1]).max() / threshold) if same else math.inf
    return rows, (
        f"{piece.num_dofs:,} unknowns (P2), {values[0].size} modes below {threshold:.4g} 1/m^2; "
        f"largest eigenvalue difference between the two numberings {gap:.1e} of the cutoff"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="722817260")
    parser.add_argument("--skip-eigen", action="store_true")
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "real_cell_kernels.md")
    )
    args = parser.parse_args()
    import navis  # GPL-3.0: benchmark and test only
    import torch

    from mf_dmri import units
    from mf_dmri.geometry import SurfaceMesh, remesh_surface, repair_surface, tetrahedralize

    torch.set_num_threads(1)
    ids = ("1734350788", "1734350908", "722817260", "754534424", "754538881")
    neuron = navis.example_neurons(kind="mesh")[ids.index(args.cell)]
    raw = SurfaceMesh(
        np.asarray(neuron.vertices, float) * 8 * units.nm, np.asarray(neuron.faces, np.int64)
    )
    repaired, _ = repair_surface(raw, merge_tolerance=1e-3)
    remeshed, _ = remesh_surface(
        repaired,
        max_edge=1 * units.um,
        min_edge=0.25 * units.um,
        cells_across=1.5,
        keep_creases=False,
    )
    print(f"remeshed: {remeshed.n_faces} triangles", flush=True)
    lines = [
        "# Real-cell kernels, each against the method it replaced (one run, one core)",
        "",
        f"Generated by `OMP_NUM_THREADS=1 python benchmarks/bench_real_cell_kernels.py "
        f"--cell {args.cell}` on {platform.machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CPU seconds of this "
        "process.  navis mesh "
        f"{args.cell} repaired and remeshed as in the gallery (max_edge 1 um, min_edge 0.25 "
        f"um, cells_across 1.5): {remeshed.n_faces} triangles.",
        "",
        "## Bounded thickness cast (`local_thickness(surface, reach=...)`)",
        "",
        "| reach [um] | ball around each vertex (before) [s] | segment-piece boxes (now) [s] "
        "| speed-up | largest difference [m] |",
        "|---|---|---|---|---|",
        *thickness_rows(remeshed, (1.5, 4.0, 8.0)),
        "",
        "The remesh step casts to `max_edge x cells_across` = 1.5 um; netgen's local sizes to "
        "`thin_part_cells x` the longest surface edge (~4 um here).",
    ]
    if not args.skip_eigen:
        mesh = tetrahedralize(remeshed, allow_multiple_bodies=True)
        rows, summary = eigen_rows(mesh)
        lines += [
            "",
            "## Block Lanczos of the P2 eigenbasis in two numberings (`lowest_spectrum`)",
            "",
            f"Netgen mesh: {mesh.quality.n_nodes} nodes, {mesh.quality.n_elements} tets; "
            f"{summary}.  Solver timings are its own (wall clock of a one-thread process).",
            "",
            "| numbering | bandwidth | M X, 16 columns [ms] | modes | solve CPU [s] "
            "| orthogonalisation [s] | Rayleigh-Ritz [s] | solves [s] | factorisations [s] |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
