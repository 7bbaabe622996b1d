"""Coupled sweep geometries (nested compartments with permeable membranes).

References: the library's own coupled path outside the sweep (tetrahedralize ->
permeable_mesh -> permeable_eigenbasis -> signal, for each tissue point), and at zero
permeability the independent impermeable computation: each labelled region of the same
tetrahedral mesh meshed alone (Neumann eigenbasis) and the regions' signals added with
weights volume x spin density (the compartments do not exchange, so the coupled system
splits into them exactly).
"""

import csv
from dataclasses import replace

import numpy as np
import pytest
import torch
from sweep_helpers import MemorySink, coupled_spec

from mf_dmri.cli.main import main
from mf_dmri.eigenbasis import as_product_domain
from mf_dmri.fem import PermeableParameters, mesh_eigenbasis, permeable_eigenbasis, permeable_mesh
from mf_dmri.geometry import build_compartments, concatenate, sphere, tetrahedralize
from mf_dmri.io.mesh import save_surface
from mf_dmri.io.sweep_toml import default_registry, spec_from_toml
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.signal import Compartment, signal, signal_with_error
from mf_dmri.sweep import build_plan, run_sweep
from mf_dmri.units import ms, um, um2_per_ms

REGISTRY = default_registry()
INNER, OUTER, LENGTH_SCALE, MESH_SIZE, LEVEL = 2 * um, 4 * um, 2.5 * um, 2.0 * um, 1


def labelled_mesh():
    """The sweep's tetrahedral mesh of sphere_in_sphere: label 0 = shell, 1 = ball."""
    surfaces = [sphere(OUTER, subdivisions=LEVEL), sphere(INNER, subdivisions=LEVEL)]
    return tetrahedralize(build_compartments(surfaces), length_scale=MESH_SIZE)


def acquisition(plan) -> Acquisition:
    """The sweep's measurements (one PGSE timing) built directly from its columns."""
    columns = plan.measurements.columns
    directions = np.stack([columns[f"direction_{a}"] for a in "xyz"], axis=1)
    return Acquisition.from_bvalues(
        PGSE(10 * ms, 30 * ms), torch.as_tensor(columns["bvalue"]), torch.as_tensor(directions)
    )


def run(spec, **kwargs):
    sink = MemorySink()
    result = run_sweep(spec, sink, registry=REGISTRY, **kwargs)
    return result, sink


@pytest.fixture(scope="module")
def permeable_run():
    spec = coupled_spec(permeabilities=(0.0, 1e-4))
    return build_plan(spec, REGISTRY), *run(spec)


def test_each_permeability_equals_the_direct_coupled_signal(permeable_run):
    plan, result, sink = permeable_run
    assert result.rows == 2 and result.basis_solves == 2 and plan.coupled
    mesh = permeable_mesh(labelled_mesh())
    for row, kappa in enumerate((0.0, 1e-4)):
        assert plan.parameter_table()["permeability"][row] == kappa
        parameters = PermeableParameters(
            diffusivity=(2.0 * um2_per_ms, 1.0 * um2_per_ms),
            permeability=kappa,
            t2=(0.08, 0.05),
            spin_density=(1.0, 0.7),
            surface_relaxivity=(1e-5, 0.0),
        )
        basis = permeable_eigenbasis(mesh, parameters, length_scale=LENGTH_SCALE)
        checked = signal_with_error(basis, acquisition(plan))
        expected = checked.signal.detach().numpy()
        np.testing.assert_allclose(sink.signals[row][0], expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(sink.bars[row][0], checked.error_bar, rtol=1e-9, atol=1e-15)
        assert np.isfinite(sink.bars[row]).all() and sink.bars[row].max() > 0
        # the bar is checked against converged references in test_coupled_error_bar.py; the
        # signal is reported at the checked (finer) cutoff, close to the sweep's own
        direct = signal(basis, acquisition(plan)).numpy()
        np.testing.assert_allclose(direct, expected, rtol=0, atol=1e-5)
    assert np.abs(sink.signals[0] - sink.signals[1]).max() > 1e-3  # exchange matters


@pytest.mark.parametrize("normalize", [True, False])
def test_zero_permeability_equals_the_impermeable_compartments(normalize):
    """Normalised, and without normalisation in [m^3] (volume x density weights), as an
    impermeable sweep."""
    spec = coupled_spec(
        permeabilities=(0.0,), diffusivity_intra=2.0 * um2_per_ms, t2=0.06, relaxivity=0.0
    )
    spec = replace(spec, normalize=normalize)
    plan = build_plan(spec, REGISTRY)
    _, sink = run(spec)
    volume = labelled_mesh()
    # the sweep reports the signal at the finer rate of its error check: the same cutoff
    parameters = PermeableParameters(
        diffusivity=2.0 * um2_per_ms, permeability=0.0, t2=0.06, spin_density=(1.0, 0.7)
    )
    coupled = permeable_eigenbasis(permeable_mesh(volume), parameters, length_scale=LENGTH_SCALE)
    rate = signal_with_error(coupled, acquisition(plan)).max_eigenvalues[0]
    cutoff = (rate - 1 / 0.06) / (2.0 * um2_per_ms) * (1 + 1e-9)
    compartments = []
    for label, density in ((0, 1.0), (1, 0.7)):
        elements = volume.elements[volume.labels == label]
        used, local = np.unique(elements, return_inverse=True)
        basis = mesh_eigenbasis(
            volume.nodes[used], local.reshape(elements.shape), max_eigenvalue=cutoff, order=1
        )
        compartments.append(
            Compartment(as_product_domain(basis), 2.0 * um2_per_ms, t2=0.06, spin_density=density)
        )
    expected = signal(compartments, acquisition(plan), normalize=normalize).numpy()
    # the same truncation (one D and T2: both keep Laplace eigenvalues <= that cutoff),
    # so only the eigensolver's round-off separates them (measured 7e-14 relative)
    scale = 1.0 if normalize else 4 / 3 * np.pi * OUTER**3
    np.testing.assert_allclose(sink.signals[0][0], expected, rtol=0, atol=1e-11 * scale)


@pytest.mark.parametrize(("ball_first", "tolerance"), [(False, 1e-9), (True, 2e-4)])
def test_nested_surface_file_gives_the_generated_pair(
    permeable_run, tmp_path, ball_first, tolerance
):
    """Names follow the nesting, not the file order.  In the generator's order the meshes
    are the same (round-off); ball first, the mesher makes other tetrahedra (signals
    differ by ~4e-5), while names mapped to the wrong regions would swap D 1 <-> 2 um^2/ms
    and T2 50 <-> 80 ms (differences of ~1e-1)."""
    plan, _, sink = permeable_run
    surfaces = [sphere(OUTER, subdivisions=LEVEL), sphere(INNER, subdivisions=LEVEL)]
    first, second = surfaces[::-1] if ball_first else surfaces
    both = concatenate([first, second])
    save_surface(both, tmp_path / "nested.ply", unit=um)
    text = TOML.replace(
        'shape = "sphere_in_sphere"\ninner_radius_um = 2.0\nouter_radius_um = 4.0\n'
        "subdivisions = 1",
        'shape = "nested_mesh"\nfiles = ["nested.ply"]\nunit = "um"\n'
        'compartments = ["extra", "intra"]',
    )
    spec = spec_from_toml(text, base_dir=tmp_path, registry=REGISTRY)
    _, from_file = run(spec)
    for row in range(2):
        np.testing.assert_allclose(
            from_file.signals[row], sink.signals[row], rtol=0, atol=tolerance
        )


TOML = """
[[geometry]]
shape = "sphere_in_sphere"
inner_radius_um = 2.0
outer_radius_um = 4.0
subdivisions = 1
length_scale_um = 2.5
mesh_size_um = 2.0
[tissue]
diffusivity_um2_per_ms = 2.0
permeability_um_per_ms = [0.0, 0.1]
t2_ms = 80
[tissue.intra]
diffusivity_um2_per_ms = 1.0
t2_ms = 50
spin_density = 0.7
[tissue.extra]
surface_relaxivity_um_per_ms = 0.01
[[acquisition]]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000, 3000]
directions = [[1, 0, 0], [0, 0.6, 0.8]]
"""


def test_toml_reads_the_simulate_vocabulary(permeable_run):
    plan, _, _ = permeable_run
    toml_plan = build_plan(spec_from_toml(TOML, registry=REGISTRY), REGISTRY)
    for read, given in zip(toml_plan.geometries, plan.geometries, strict=True):
        assert read.tissue == pytest.approx(given.tissue, rel=1e-15)
    assert toml_plan.num_rows == 2 and toml_plan.num_tissue == 1


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "spin_density = 0.7",
            "spin_density = 0.7\nvolume_fraction = 0.3",
            r"\[tissue.intra\] volume_fraction: .*mesh fixes the fractions",
        ),
        (
            "spin_density = 0.7",
            "spin_density = 0.7\npermeability_um_per_ms = 0.1",
            r"\[tissue.intra\] permeability_um_per_ms: permeability is one value for every",
        ),
        ("[0.0, 0.1]", "[0.0, -0.1]", r"\[tissue\] permeability_um_per_ms: .*non-negative"),
        ("[tissue.extra]", "[tissue.axon]", r"compartments \['axon'\] that the geometry lacks"),
        (
            "[[acquisition]]",
            '[[geometry]]\nshape = "cylinder"\nradius_um = 1.0\n[[acquisition]]',
            r"coupled shapes \['sphere_in_sphere'\].*cannot share a sweep.*\['cylinder'\]",
        ),
        ("inner_radius_um = 2.0", "inner_radius_um = 5.0", "0 < inner_radius < outer_radius"),
    ],
)
def test_coupled_errors_name_the_key(old, new, message):
    assert old in TOML
    with pytest.raises(ValueError, match=message):
        spec = spec_from_toml(TOML.replace(old, new, 1), registry=REGISTRY)
        run(build_plan(spec, REGISTRY))


def test_coupling_keys_need_a_coupled_shape():
    text = TOML.replace(
        'shape = "sphere_in_sphere"\ninner_radius_um = 2.0\nouter_radius_um = 4.0\n'
        "subdivisions = 1",
        'shape = "sphere"\nradius_um = 2.0',
    ).replace("mesh_size_um = 2.0\n", "")
    text = text[: text.index("[tissue.intra]")] + text[text.index("[[acquisition]]") :]
    with pytest.raises(ValueError, match=r"\[tissue\] permeability_um_per_ms: .*coupled shape"):
        spec_from_toml(text, registry=REGISTRY)


def test_nested_mesh_needs_one_name_per_compartment(tmp_path):
    save_surface(sphere(OUTER, subdivisions=LEVEL), tmp_path / "one.ply", unit=um)
    geometry = 'shape = "nested_mesh"\nfiles = ["one.ply"]\nunit = "um"\n'
    base = TOML.replace(
        'shape = "sphere_in_sphere"\ninner_radius_um = 2.0\nouter_radius_um = 4.0\n'
        "subdivisions = 1\n",
        geometry,
    )
    for names, message in (("", "needs compartments"), ('["extra", "intra"]', "1 nested")):
        text = base.replace(geometry, geometry + (f"compartments = {names}\n" if names else ""))
        spec = spec_from_toml(text, base_dir=tmp_path, registry=REGISTRY)
        with pytest.raises(ValueError, match=message):
            run(spec)


SIMULATE = """
[mesh]
path = "nested.ply"
unit = "um"
length_scale_um = 2.5
permeability_um_per_ms = 0.1
[[compartment]]
name = "extra"
diffusivity_um2_per_ms = 2.0
t2_ms = 80
surface_relaxivity_um_per_ms = 0.01
[[compartment]]
name = "intra"
diffusivity_um2_per_ms = 1.0
t2_ms = 50
spin_density = 0.7
[acquisition]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000, 3000]
directions = [[1, 0, 0], [0, 0.6, 0.8]]
[output]
path = "signals.csv"
"""


def test_nested_mesh_row_equals_the_simulate_voxel(tmp_path):
    """The two front ends, one physics: mf-dmri simulate's [mesh] (tetrahedra of edge
    length_scale) and a sweep's nested_mesh with mesh_size = length_scale give the same
    signal (simulate's CSV keeps 15 significant digits)."""
    ball, shell = sphere(INNER, subdivisions=LEVEL), sphere(OUTER, subdivisions=LEVEL)
    both = concatenate([ball, shell])
    save_surface(both, tmp_path / "nested.ply", unit=um)
    (tmp_path / "simulate.toml").write_text(SIMULATE)
    assert main(["simulate", str(tmp_path / "simulate.toml")]) == 0
    with open(tmp_path / "signals.csv") as handle:
        rows = list(csv.DictReader(handle))
    voxel = np.array([float(row["signal_real"]) for row in rows])
    voxel_bar = np.array([float(row["signal_error_bar"]) for row in rows])
    text = TOML.replace(
        'shape = "sphere_in_sphere"\ninner_radius_um = 2.0\nouter_radius_um = 4.0\n'
        "subdivisions = 1",
        'shape = "nested_mesh"\nfiles = ["nested.ply"]\nunit = "um"\n'
        'compartments = ["extra", "intra"]',
    ).replace("mesh_size_um = 2.0", "mesh_size_um = 2.5")
    text = text.replace("[0.0, 0.1]", "0.1")
    _, sink = run(spec_from_toml(text, base_dir=tmp_path, registry=REGISTRY))
    np.testing.assert_allclose(sink.signals[0][0].real, voxel, rtol=1e-13, atol=0)
    # the same error bar too (finite: the coupled basis' truncation and propagation errors)
    assert np.isfinite(voxel_bar).all() and voxel_bar.max() > 0
    np.testing.assert_allclose(sink.bars[0][0], voxel_bar, rtol=1e-9, atol=1e-15)


def test_cylinder_in_box_keeps_the_unweighted_signal():
    """A capped cylinder in a cube, one T2, no surface relaxation: the constant is a mode of
    rate 1/T2 whatever the permeability, so at b = 0 the signal is exp(-TE / T2) exactly
    (TE = 40 ms); it decreases with b along both directions."""
    geometry = (
        'shape = "cylinder_in_box"\nradius_um = 1.5\nlength_um = 4.0\nbox_size_um = 5.0\n'
        "segments = 12"
    )
    text = (
        TOML.replace(
            'shape = "sphere_in_sphere"\ninner_radius_um = 2.0\nouter_radius_um = 4.0\n'
            "subdivisions = 1",
            geometry,
        )
        .replace("t2_ms = 50\n", "")
        .replace("spin_density = 0.7\n", "")
        .replace("surface_relaxivity_um_per_ms = 0.01\n", "")
        .replace("[0.0, 0.1]", "0.05")
        .replace("[[1, 0, 0], [0, 0.6, 0.8]]", "[[1, 0, 0], [0, 0, 1]]")
    )
    result, sink = run(spec_from_toml(text, registry=REGISTRY))
    signals = sink.signals[0][0]
    assert result.basis_solves == 1
    assert abs(signals[0] - np.exp(-0.04 / 0.08)) < 1e-10
    assert (signals[0].real > signals[1:3].real).all()
    assert (signals[1:3].real > signals[3:5].real).all()


def test_a_local_run_meshes_once_per_shape_point():
    """Two permeabilities on one sphere_in_sphere: two coupled solves, one mesh."""
    calls = []
    base = REGISTRY["sphere_in_sphere"]

    def build(parameters, options, plausibility):
        calls.append(dict(parameters))
        return base.build(parameters, options, plausibility)

    registry = REGISTRY.with_builder(replace(base, build=build))
    result = run_sweep(coupled_spec(permeabilities=(0.0, 1e-4)), MemorySink(), registry=registry)
    assert result.basis_solves == 2 and len(calls) == 1
