"""Exceptions of the geometry layer: one subclass of :class:`MeshError` per problem.

Each message names the problem, where it is, and the fix.
"""

from __future__ import annotations


class MeshError(ValueError):
    """A surface or volume mesh is unusable for the simulation."""


class DuplicateVerticesError(MeshError):
    """Several vertices sit at the same position (typical of STL files)."""


class DegenerateFacesError(MeshError):
    """Faces with (near) zero area or repeated corner indices."""


class OpenSurfaceError(MeshError):
    """The surface has boundary (open) edges: it is not watertight."""


class NonManifoldError(MeshError):
    """Edges shared by more than two faces."""


class InconsistentWindingError(MeshError):
    """Neighbouring faces are wound in opposite directions."""


class InwardWindingError(MeshError):
    """A closed body has negative signed volume: its normals point inwards."""


class SelfIntersectionError(MeshError):
    """Faces of the surface cross each other."""


class MultipleBodiesError(MeshError):
    """The surface consists of several disconnected bodies where one was expected."""


class ImplausibleSizeError(MeshError):
    """The mesh extent is implausible for a cell in the declared unit."""


class SurfaceIntersectionError(MeshError):
    """Two surfaces of a compartment model cross each other."""


class VolumeFidelityError(MeshError):
    """The tetrahedral mesh volume differs from the surface volume beyond tolerance."""


class MesherError(MeshError):
    """The tetrahedral mesher failed or is not installed."""


class MesherTimeoutError(MesherError):
    """The tetrahedral mesher ran past its time budget and was stopped."""


class UnresolvedThinPartError(MeshError):
    """Thin parts of the volume mesh have no interior node (no element across them)."""


class RepairError(MeshError):
    """Repair could not make the surface valid.  ``surface`` holds the partly repaired
    surface [m] and ``report`` the :class:`~mf_dmri.geometry.repair.RepairReport`."""

    def __init__(self, message: str, *, surface=None, report=None) -> None:
        super().__init__(message)
        self.surface = surface
        self.report = report


class RemeshError(MeshError):
    """Surface remeshing gave an invalid surface or changed the volume too much.
    ``surface`` holds the remeshed surface [m] and ``report`` the
    :class:`~mf_dmri.geometry.remesh.RemeshReport`."""

    def __init__(self, message: str, *, surface=None, report=None) -> None:
        super().__init__(message)
        self.surface = surface
        self.report = report
