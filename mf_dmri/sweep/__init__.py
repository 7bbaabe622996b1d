"""Parameter sweeps (dictionary generation): geometry x tissue x acquisition, with one
eigenbasis per geometry, batched signals, resumable storage and an optional Ray executor;
coupled shapes (permeable nested compartments) make every tissue point a geometry point.

Typical use (files are handled by ``mf_dmri.io``)::

    spec = mf_dmri.io.sweep_toml.load_sweep_toml("sweep.toml")
    plan = build_plan(spec, DEFAULT_REGISTRY)
    store = mf_dmri.io.sweep_store.SweepStore("out.h5", plan)
    result = run_sweep(plan, store)
    store.finalize(mf_dmri.io.sweep_provenance.sweep_provenance(plan, device=..., executor=...))
"""

from mf_dmri.sweep.acquisition import MeasurementTable, hemisphere_directions, measurement_table
from mf_dmri.sweep.batched import GeometrySimulator
from mf_dmri.sweep.coupled_simulator import CoupledSimulator
from mf_dmri.sweep.engine import SweepResult, geometry_chunks, run_sweep, solve_geometry
from mf_dmri.sweep.plan import Chunk, GeometryPoint, SweepPlan, build_plan
from mf_dmri.sweep.progress import ProgressUpdate
from mf_dmri.sweep.ranges import Grid, Random, Values
from mf_dmri.sweep.registry import DEFAULT_REGISTRY, GeometryBuilder, GeometryRegistry
from mf_dmri.sweep.spec import AcquisitionBlock, GeometrySpec, SweepSpec, TissueSpec

__all__ = [
    "DEFAULT_REGISTRY",
    "AcquisitionBlock",
    "Chunk",
    "CoupledSimulator",
    "GeometryBuilder",
    "GeometryPoint",
    "GeometryRegistry",
    "GeometrySimulator",
    "GeometrySpec",
    "Grid",
    "MeasurementTable",
    "ProgressUpdate",
    "Random",
    "SweepPlan",
    "SweepResult",
    "SweepSpec",
    "TissueSpec",
    "Values",
    "build_plan",
    "geometry_chunks",
    "hemisphere_directions",
    "measurement_table",
    "run_sweep",
    "solve_geometry",
]
