"""Reading and writing triangle surface meshes (the only module of mf_dmri that touches mesh
files).  Files carry no reliable unit, so the caller states it: ``unit`` is the length of
one file unit in metres, e.g. ``mf_dmri.units.um`` for a file in micrometres.

Formats: PLY, STL, OBJ, OFF, GLB/GLTF through trimesh (``process=False``: nothing is merged
or repaired on reading); VTK/VTU through meshio.  Vertices are neither merged nor reordered,
so an STL file comes back with duplicated vertices: check and repair explicitly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mf_dmri.geometry.surface import SurfaceMesh

TRIMESH_FORMATS = (".ply", ".stl", ".obj", ".off", ".glb", ".gltf")
MESHIO_FORMATS = (".vtk", ".vtu")


class MeshFileError(ValueError):
    """A mesh file could not be read or written."""


def _check_unit(unit: float) -> float:
    try:
        value = float(unit)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"unit must be a number of metres per file unit, got {unit!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"unit must be a positive number of metres per file unit [m], got {unit!r}; "
            "e.g. mf_dmri.units.um for a file in micrometres"
        )
    return value


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TRIMESH_FORMATS + MESHIO_FORMATS:
        raise MeshFileError(
            f"{path}: unsupported mesh format {suffix!r}; use one of "
            f"{', '.join(TRIMESH_FORMATS + MESHIO_FORMATS)}"
        )
    return suffix


def _check_stl(path: Path) -> None:
    """Refuse a file that is neither a binary STL (80-byte header, triangle count N, size
    84 + 50 N bytes) nor an ASCII STL (text starting with 'solid')."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(84)
    if size >= 84:
        count = int.from_bytes(head[80:84], "little")
        if size == 84 + 50 * count:
            return
    if head.lstrip().lower().startswith(b"solid"):
        try:
            path.read_bytes().decode("ascii")
            return
        except UnicodeDecodeError:
            pass
    expected = f"{84 + 50 * int.from_bytes(head[80:84], 'little')}" if size >= 84 else ">= 84"
    raise MeshFileError(
        f"{path}: not an STL file: {size} bytes, but a binary STL with the triangle count "
        f"in its header has {expected} bytes, and it is not ASCII text starting with "
        "'solid'; the file is truncated or not a mesh: export it again"
    )


def _read_trimesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    if path.suffix.lower() == ".stl":
        _check_stl(path)
    # OBJ: the file's vertices as written; otherwise trimesh splits every vertex whose
    # corners carry different normals or texture coordinates (``f v//vn``, Blender's
    # default), leaving a closed surface open
    options = {"maintain_order": True} if path.suffix.lower() == ".obj" else {}
    try:
        loaded = trimesh.load(path, process=False, force="mesh", **options)
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise MeshFileError(
            f"{path}: cannot parse as a {path.suffix} mesh ({type(exc).__name__}: {exc}); "
            "check that the file is a complete triangle mesh of that format"
        ) from exc
    faces = getattr(loaded, "faces", None)
    if faces is None or len(faces) == 0:
        raise MeshFileError(
            f"{path}: the file holds no triangle faces (a point cloud or empty scene?); "
            "export the surface as a triangle mesh"
        )
    return np.asarray(loaded.vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def _read_meshio(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import meshio

    # the format's own reader: meshio.read prints and calls sys.exit on a corrupt file
    reader = {".vtk": meshio.vtk.read, ".vtu": meshio.vtu.read}[path.suffix.lower()]
    try:
        data = reader(str(path))
    except Exception as exc:
        raise MeshFileError(
            f"{path}: cannot parse as a {path.suffix} mesh ({type(exc).__name__}: {exc}); "
            "check that the file is a complete VTK file"
        ) from exc
    triangles = [block.data for block in data.cells if block.type == "triangle"]
    if not triangles:
        kinds = sorted({block.type for block in data.cells})
        raise MeshFileError(
            f"{path}: no triangle cells (found {kinds or 'none'}); export the boundary surface "
            "as triangles"
        )
    return np.asarray(data.points[:, :3], dtype=np.float64), np.concatenate(triangles)


def load_surface(path: str | Path, unit: float) -> SurfaceMesh:
    """Read a triangle surface mesh and convert it to metres.

    path: mesh file (PLY, STL, OBJ, OFF, GLB/GLTF, VTK, VTU).
    unit: metres per file unit [m], e.g. ``mf_dmri.units.um``; required, never guessed.
    """
    unit = _check_unit(unit)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such mesh file")
    suffix = _suffix(path)
    if path.stat().st_size == 0:
        raise MeshFileError(f"{path}: the file is empty; export the surface mesh again")
    reader = _read_meshio if suffix in MESHIO_FORMATS else _read_trimesh
    vertices, faces = reader(path)
    if not np.isfinite(vertices).all():
        raise MeshFileError(f"{path}: vertex coordinates contain NaN or infinity")
    try:
        return SurfaceMesh(vertices * unit, faces)
    except (ValueError, TypeError) as exc:
        raise MeshFileError(f"{path}: {exc}") from exc


def save_surface(mesh: SurfaceMesh, path: str | Path, unit: float) -> None:
    """Write a surface mesh, converting metres to the file unit.

    mesh: the surface [m].  path: output file; the format follows the suffix.
    unit: metres per file unit [m] (coordinates written are vertices / unit).
    """
    unit = _check_unit(unit)
    path = Path(path)
    suffix = _suffix(path)
    vertices = np.asarray(mesh.vertices) / unit
    if suffix in MESHIO_FORMATS:
        import meshio

        meshio.write(path, meshio.Mesh(vertices, [("triangle", np.asarray(mesh.faces))]))
        return
    if suffix == ".ply":
        _write_ply_double(vertices, np.asarray(mesh.faces), path)
        return
    import trimesh

    exported = trimesh.Trimesh(vertices=vertices, faces=np.asarray(mesh.faces), process=False)
    # text formats: enough decimals for every significant digit of a float64 (trimesh's
    # default of 8 rounds coordinates in metres to 10 nm)
    options = {"digits": _decimals(vertices)} if suffix in (".obj", ".off") else {}
    try:
        exported.export(path, **options)
    except Exception as exc:
        raise MeshFileError(f"{path}: cannot write mesh ({type(exc).__name__}: {exc})") from exc


def _decimals(vertices: np.ndarray) -> int:
    """Decimal places that keep 17 significant digits of the largest coordinate."""
    largest = float(np.abs(vertices).max(initial=0.0))
    return int(np.clip(16 - math.floor(math.log10(largest)), 8, 40)) if largest > 0 else 8


def _write_ply_double(vertices: np.ndarray, faces: np.ndarray, path: Path) -> None:
    """Binary little-endian PLY with float64 coordinates (trimesh writes float32)."""
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by mf_dmri\n"
        f"element vertex {len(vertices)}\nproperty double x\nproperty double y\n"
        f"property double z\nelement face {len(faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    face_records = np.empty(len(faces), dtype=[("count", "u1"), ("index", "<i4", (3,))])
    face_records["count"] = 3
    face_records["index"] = faces
    from mf_dmri.io.sealed import atomic_write

    def write(handle) -> None:
        handle.write(header.encode("ascii"))
        handle.write(np.ascontiguousarray(vertices, dtype="<f8").tobytes())
        handle.write(face_records.tobytes())

    atomic_write(path, write)
