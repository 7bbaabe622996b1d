"""mf_dmri: a differentiable diffusion-MRI simulator (matrix formalism, PyTorch).

The main calls are available from the top level (loaded on first use)::

    import mf_dmri as mf
    acquisition = mf.multi_shell(mf.PGSE(10e-3, 30e-3), [0, 1e9, 3e9], 30)
    axon = mf.Compartment(mf.cylinder(5e-6), diffusivity=2e-9)
    E = mf.signal(axon, acquisition)
"""

from importlib import import_module

__version__ = "0.1.0"

import mf_dmri.signal as _signal_layer  # noqa: E402
from mf_dmri.eigenbasis import Eigenbasis  # noqa: E402

#: ``mf.signal`` is the main call; the subpackage of the same name is imported by its full
#: path (``from mf_dmri.signal import ...``), which this name does not affect.
signal = _signal_layer.signal

#: top-level name -> module that defines it (imported lazily: ``import mf_dmri`` stays light)
_LAZY = {
    # shapes and units
    "cylinder": "mf_dmri.analytic",
    "sphere": "mf_dmri.analytic",
    "slab": "mf_dmri.analytic",
    "free": "mf_dmri.analytic",
    "units": "mf_dmri.units",
    # acquisitions
    "PGSE": "mf_dmri.sequences",
    "DoublePGSE": "mf_dmri.sequences",
    "OGSE": "mf_dmri.sequences",
    "SampledWaveform": "mf_dmri.sequences",
    "Acquisition": "mf_dmri.sequences",
    "multi_shell": "mf_dmri.sequences",
    # signals
    "Compartment": "mf_dmri.signal",
    "Plausibility": "mf_dmri.plausibility",
    "PlausibilityWarning": "mf_dmri.plausibility",
    "signal_with_error": "mf_dmri.signal",
    "SignalResult": "mf_dmri.signal",
    # meshes
    "load_surface": "mf_dmri.io.mesh",
    "save_surface": "mf_dmri.io.mesh",
    "load_swc": "mf_dmri.io.swc",
    "simplify_morphology": "mf_dmri.geometry",
    "morphology_surface": "mf_dmri.geometry",
    "check_surface": "mf_dmri.geometry",
    "tetrahedralize": "mf_dmri.geometry",
    "mesh_eigenbasis": "mf_dmri.fem",
    "permeable_mesh": "mf_dmri.fem",
    "permeable_eigenbasis": "mf_dmri.fem",
    "PermeableParameters": "mf_dmri.fem",
    # fitting
    "fit": "mf_dmri.inverse",
    "fit_voxels": "mf_dmri.inverse.voxelwise",
    "VoxelModel": "mf_dmri.inverse.voxel_model",
    "CylinderModel": "mf_dmri.inverse",
    "SphereModel": "mf_dmri.inverse",
    "cramer_rao_bound": "mf_dmri.inverse",
    # files
    "read_dwi": "mf_dmri.io.nifti",
    "write_dwi": "mf_dmri.io.nifti",
    "Scheme": "mf_dmri.io.scheme",
    "read_camino_scheme": "mf_dmri.io.camino",
    "write_camino_scheme": "mf_dmri.io.camino",
    "read_mrtrix_b": "mf_dmri.io.mrtrix",
    "write_mrtrix_b": "mf_dmri.io.mrtrix",
    "load_fsl_acquisition": "mf_dmri.io.fsl",
    "acquisition_from_gradient_table": "mf_dmri.io.dipy_gtab",
    "to_gradient_table": "mf_dmri.io.dipy_gtab",
}

#: subpackages reachable as attributes (``mf.geometry.repair_surface``) without their own
#: import; ``mf.signal`` stays the function (``import mf_dmri.signal`` for the layer)
_SUBPACKAGES = ("analytic", "fem", "geometry", "inverse", "io", "sequences", "sweep")

__all__ = ["Eigenbasis", "__version__", "signal", *_LAZY]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        value = import_module(f"mf_dmri.{name}")
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mf_dmri' has no attribute {name!r}")
    value = import_module(module) if name == "units" else getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBPACKAGES])
