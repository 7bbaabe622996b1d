"""Mesh benchmarks: check_surface times and a mesher comparison (netgen, tetgen, fTetWild,
gmsh) on clean and imperfect inputs.  Each mesher run happens in a subprocess with a time
limit (a crash or hang counts as a failure).  Prints a table and writes
benchmarks/results/mesh.md.

    python benchmarks/bench_mesh.py            # everything (~10-20 min on 2 busy cores)
    python benchmarks/bench_mesh.py --quick    # skip fTetWild and the largest sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mf_dmri import units  # noqa: E402
from mf_dmri.geometry import (  # noqa: E402
    CompartmentModel,
    box,
    build_compartments,
    check_surface,
    concatenate,
    cylinder,
    sphere,
)
from mf_dmri.geometry.mesher_backends import BACKENDS, scaled_model  # noqa: E402
from mf_dmri.geometry.surface import SurfaceMesh  # noqa: E402
from mf_dmri.geometry.tetra import mesh_quality  # noqa: E402
from mf_dmri.io.mesh import load_surface  # noqa: E402

um = units.um
METHODS = ("netgen", "tetgen", "tetwild", "gmsh")


def case(name: str) -> CompartmentModel:
    """The inputs: clean ones go through build_compartments; imperfect ones are wrapped raw
    (one compartment, signed volume as reference) to see what each mesher does with them."""
    if name == "sphere_1k":
        return build_compartments(sphere(5 * um, subdivisions=3))
    if name == "sphere_20k":
        return build_compartments(sphere(5 * um, subdivisions=5))
    if name == "axon_in_box":
        axon = cylinder(2 * um, 8 * um, segments=32).translated([5 * um, 5 * um, 5 * um])
        return build_compartments([axon, box((10 * um,) * 3, edge_length=0.5 * um)])
    if name == "neuron":
        return build_compartments(load_surface(ROOT / "tests/data/neuron_seed1.ply", units.um))
    cell = sphere(5 * um, subdivisions=3)
    if name == "overlapping_spheres":  # self-intersecting: two bodies crossing
        raw = concatenate([cell, cell.translated([4 * um, 0.5 * um, 0.2 * um])])
    elif name == "sphere_with_hole":  # open: two faces missing
        raw = SurfaceMesh(cell.vertices, cell.faces[:-2])
    else:
        raise ValueError(name)
    return CompartmentModel(
        (raw,), (-1,), (raw.signed_volume(),), raw.vertices.mean(axis=0)[None], ("raw",)
    )


def mesh_gmsh(model: CompartmentModel, max_edge, local_sizes):
    """gmsh (GPL-2.0+) from the discrete surfaces, one volume per compartment."""
    import gmsh

    gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", int(os.environ.get("GMSH_VERBOSE", "0")))
    gmsh.model.add("mf_dmri")
    offset, tags = 1, []
    for surface in model.surfaces:
        tag = gmsh.model.addDiscreteEntity(2)
        gmsh.model.mesh.addNodes(
            2, tag, np.arange(offset, offset + surface.n_vertices), surface.vertices.ravel()
        )
        gmsh.model.mesh.addElementsByType(tag, 2, [], (surface.faces + offset).ravel())
        offset += surface.n_vertices
        tags.append(gmsh.model.geo.addSurfaceLoop([tag]))
    for index in range(model.n_compartments):
        holes = [tags[child] for child in model.children(index)]
        gmsh.model.geo.addVolume([tags[index], *holes], index + 1)
    gmsh.model.geo.synchronize()
    if max_edge is not None:
        gmsh.option.setNumber("Mesh.MeshSizeMax", max_edge)
    gmsh.model.mesh.generate(3)
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    nodes = np.zeros((int(node_tags.max()) + 1, 3))
    nodes[node_tags.astype(int)] = coords.reshape(-1, 3)
    elements, labels = [], []
    for dim, volume in gmsh.model.getEntities(3):
        types, _, element_nodes = gmsh.model.mesh.getElements(dim, volume)
        for kind, data in zip(types, element_nodes, strict=True):
            if kind == 4:
                block = data.reshape(-1, 4).astype(np.int64)
                elements.append(block)
                labels.append(np.full(len(block), volume - 1))
    gmsh.finalize()
    if not elements:
        raise RuntimeError("gmsh produced no tetrahedra (open or intersecting surface?)")
    return nodes, np.concatenate(elements), np.concatenate(labels)


def run_one(case_name: str, method: str) -> dict:
    model = case(case_name)
    scale = max(s.extent() for s in model.surfaces)
    mesher = mesh_gmsh if method == "gmsh" else BACKENDS[method]
    start, cpu_start = time.perf_counter(), os.times()
    nodes, elements, labels = mesher(scaled_model(model, scale), None, None)
    seconds, cpu_end = time.perf_counter() - start, os.times()
    cpu = cpu_end.user - cpu_start.user + cpu_end.system - cpu_start.system
    nodes = np.asarray(nodes) * scale
    elements = np.asarray(elements, dtype=np.int64)
    from mf_dmri.geometry.quality import tet_volumes

    negative = tet_volumes(nodes, elements) < 0
    elements[negative] = elements[negative][:, [0, 2, 1, 3]]
    q = mesh_quality(nodes, elements, np.asarray(labels, dtype=np.int64), model, method, seconds)
    return {
        "tets": q.n_elements,
        "cpu": cpu,
        "seconds": seconds,
        "min_dihedral": q.min_dihedral,
        "mean_ratio": q.mean_radius_ratio,
        "volume_error": q.volume_error,
    }


def run_isolated(case_name: str, method: str, timeout: float) -> dict:
    command = [sys.executable, __file__, "--one", case_name, method]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout:.0f} s"}
    for line in done.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return {"error": tail[:90]}


def check_timings() -> list[str]:
    rows = [
        "| surface | faces | check_surface [s] | of which self-intersections [s] |",
        "|---|---|---|---|",
    ]
    from mf_dmri.geometry import self_intersections

    meshes = [(f"icosphere level {k}", sphere(5 * um, subdivisions=k)) for k in (4, 5, 6)]
    meshes.append(
        ("neuron_seed1.ply", load_surface(ROOT / "tests/data/neuron_seed1.ply", units.um))
    )
    for name, mesh in meshes:
        start = time.perf_counter()
        check_surface(mesh)
        total = time.perf_counter() - start
        start = time.perf_counter()
        self_intersections(mesh)
        rows.append(
            f"| {name} | {mesh.n_faces} | {total:.2f} | {time.perf_counter() - start:.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, metavar=("CASE", "METHOD"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    load_before = os.getloadavg()[0]
    lines = [
        "# Mesh benchmarks",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average at start {load_before:.1f} (other jobs share the cores: "
        "timings are upper bounds).",
        "",
        "## check_surface",
        "",
    ]
    lines += check_timings()
    lines += [
        "",
        "## Mesher comparison (default sizes: the surface triangles set the resolution)",
        "",
        "| input | mesher | tets | wall [s] | CPU [s] | min dihedral [deg] | "
        "mean radius ratio | volume error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cases = ["sphere_1k", "axon_in_box", "neuron", "overlapping_spheres", "sphere_with_hole"]
    if not args.quick:
        cases.insert(1, "sphere_20k")
    methods = [m for m in METHODS if not (args.quick and m == "tetwild")]
    for case_name in cases:
        for method in methods:
            if method == "tetwild" and case_name == "axon_in_box":
                lines.append(
                    f"| {case_name} | {method} | nested compartments not supported | | | | |"
                )
                continue
            result = run_isolated(case_name, method, args.timeout)
            if "error" in result:
                lines.append(f"| {case_name} | {method} | FAILED: {result['error']} | | | | | |")
            else:
                lines.append(
                    f"| {case_name} | {method} | {result['tets']} | {result['seconds']:.2f} | "
                    f"{result['cpu']:.2f} | "
                    f"{result['min_dihedral']:.2f} | {result['mean_ratio']:.3f} | "
                    f"{result['volume_error']:.1e} |"
                )
            print(lines[-1], flush=True)
    lines += ["", f"Load average at end {os.getloadavg()[0]:.1f}.", ""]
    out = ROOT / "benchmarks" / "results" / "mesh.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
