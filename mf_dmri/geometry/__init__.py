"""Surface meshes in and checked, explicit repair, generators, compartments and
tetrahedralisation.  All coordinates in metres."""

from mf_dmri.geometry.bundle import CylinderBundle, cylinder_bundle
from mf_dmri.geometry.checks import MeshReport, check_surface, validate_surface
from mf_dmri.geometry.compartments import CompartmentModel, build_compartments, winding_numbers
from mf_dmri.geometry.errors import (
    DegenerateFacesError,
    DuplicateVerticesError,
    ImplausibleSizeError,
    InconsistentWindingError,
    InwardWindingError,
    MesherError,
    MeshError,
    MultipleBodiesError,
    NonManifoldError,
    OpenSurfaceError,
    RemeshError,
    SelfIntersectionError,
    SurfaceIntersectionError,
    VolumeFidelityError,
)
from mf_dmri.geometry.generators import (
    beaded_axon,
    box,
    capsule,
    cylinder,
    ellipsoid,
    sphere,
    torus,
    undulating_axon,
)
from mf_dmri.geometry.intersections import self_intersections
from mf_dmri.geometry.morphology import CellParts, Morphology, cell_parts, frustum_volume
from mf_dmri.geometry.morphology_simplify import SimplificationReport, simplify_morphology
from mf_dmri.geometry.morphology_surface import morphology_surface
from mf_dmri.geometry.neuron import (
    NeuronSkeleton,
    bipolar_neuron,
    neuron_skeleton,
    neuron_surface,
)
from mf_dmri.geometry.neuron_occ import neuron_volume_mesh
from mf_dmri.geometry.remesh import RemeshReport, remesh_surface
from mf_dmri.geometry.repair import RepairReport, repair_surface
from mf_dmri.geometry.surface import SurfaceMesh, concatenate
from mf_dmri.geometry.tetra import TetQuality, VolumeMesh, mesh_quality, tetrahedralize
from mf_dmri.geometry.thickness import local_thickness

__all__ = [
    "CellParts",
    "CompartmentModel",
    "CylinderBundle",
    "DegenerateFacesError",
    "DuplicateVerticesError",
    "ImplausibleSizeError",
    "InconsistentWindingError",
    "InwardWindingError",
    "MeshError",
    "Morphology",
    "MeshReport",
    "MesherError",
    "MultipleBodiesError",
    "NeuronSkeleton",
    "NonManifoldError",
    "RemeshError",
    "OpenSurfaceError",
    "RemeshReport",
    "RepairReport",
    "SelfIntersectionError",
    "SimplificationReport",
    "SurfaceIntersectionError",
    "SurfaceMesh",
    "TetQuality",
    "VolumeFidelityError",
    "VolumeMesh",
    "beaded_axon",
    "bipolar_neuron",
    "box",
    "build_compartments",
    "capsule",
    "cell_parts",
    "check_surface",
    "concatenate",
    "cylinder",
    "cylinder_bundle",
    "ellipsoid",
    "frustum_volume",
    "local_thickness",
    "mesh_quality",
    "morphology_surface",
    "neuron_skeleton",
    "neuron_surface",
    "neuron_volume_mesh",
    "remesh_surface",
    "repair_surface",
    "self_intersections",
    "simplify_morphology",
    "sphere",
    "tetrahedralize",
    "torus",
    "undulating_axon",
    "validate_surface",
    "winding_numbers",
]
