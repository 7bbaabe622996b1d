"""A low-dimensional space of axon-like tubes around a straight capped cylinder.

The reference is a tetrahedral mesh of a capped cylinder of radius ``R0`` along z,
z in [z_min, z_min + L].  With x = 2 (z - z_min) / L - 1 in [-1, 1] the shape is a tube of
variable radius around a displaced centreline, in Legendre polynomials P_k:

    r(x) = R0 (1 + sum_{k=0}^{Kr} a_k P_k(x)),
    c(x) = (u_x(x), u_y(x), z),   u(x) = R0 sum_{k=1}^{Kc} b_k P_k(x),

and a reference surface vertex at (rho_x, rho_y, z) moves to
``c(s) + (r(s) / R0) (rho_x n_1(s) + rho_y n_2(s))`` with (n_1, n_2) a frame perpendicular
to the centreline tangent (n_1 the normalised projection of e_x).  Cross-sections, end caps
included, stay perpendicular to the centreline (as in ``geometry.generators``), so a bent
tube keeps its thickness.  The coefficients [-] are relative: ``a_k`` a relative radius
change, ``b_k`` a centreline displacement in units of R0.  The k = 0 centreline term (a
translation, invisible to the signal) is left out.  Legendre modes represent any smooth
profile, end slopes included (a cosine series would force flat ends); they are orthogonal
in the energy int (1 - x^2) u'(x)^2 dx with eigenvalues k (k + 1), so the roughness
weights are k (k + 1) (2 / L)^2 R0^2 (the analogue of (k pi / L)^2 R0^2).  The interior nodes
follow the surface by harmonic extension, so the eigen-data are differentiable.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.fem.extension import HarmonicExtension
from mf_dmri.geometry import SurfaceMesh
from mf_dmri.inverse.shape_space import boundary_faces


@dataclass(frozen=True, eq=False)
class TubeShapeSpace:
    """Radius and centreline modes of a straight capped cylinder (build with
    :meth:`from_volume_mesh`).

    Fields: the harmonic ``extension``; ``faces`` (F, 3) into the boundary order;
    ``reference_vertices`` (B, 3) [m]; ``radius`` R0 [m]; ``length`` L [m]; ``axial``
    (B,) s = (z - z_min) / L in [0, 1] [-]; ``radius_modes`` Kr + 1 and ``centreline_modes`` Kc (per
    transverse axis).  Coefficients are ordered [a_0..a_Kr, b_x1..b_xKc, b_y1..b_yKc].
    """

    extension: HarmonicExtension
    faces: np.ndarray
    reference_vertices: torch.Tensor
    radius: float
    length: float
    axial: np.ndarray
    radius_modes: int
    centreline_modes: int

    @classmethod
    def from_volume_mesh(
        cls,
        nodes: np.ndarray,
        elements: np.ndarray,
        *,
        radius: float,
        radius_modes: int,
        centreline_modes: int,
    ) -> TubeShapeSpace:
        """Tube space on a tetrahedral capped cylinder along z (nodes (N, 3) [m]) of
        ``radius`` [m] centred on the z axis; ``radius_modes`` >= 1 (k = 0..Kr, so
        Kr + 1 of them) and ``centreline_modes`` >= 0 per transverse axis."""
        nodes, elements = np.asarray(nodes, dtype=np.float64), np.asarray(elements)
        if nodes.ndim != 2 or nodes.shape[1] != 3 or elements.ndim != 2 or elements.shape[1] != 4:
            raise ValueError("need a tetrahedral mesh: nodes (N, 3) [m] and elements (E, 4)")
        if not (isinstance(radius_modes, int) and radius_modes >= 1):
            raise ValueError("radius_modes must be an integer >= 1 (the k = 0 mode is the radius)")
        if not (isinstance(centreline_modes, int) and centreline_modes >= 0):
            raise ValueError("centreline_modes must be an integer >= 0")
        if not (radius > 0 and math.isfinite(radius)):
            raise ValueError("radius must be positive and finite [m]")
        extension = HarmonicExtension.from_mesh(nodes, elements)
        vertices = nodes[extension.boundary]
        rho = np.linalg.norm(vertices[:, :2], axis=1)
        if rho.max() > radius * (1 + 1e-6):
            raise ValueError(
                f"the mesh reaches {rho.max():.4g} m from the z axis, beyond radius {radius:.4g}"
                " m: pass a capped cylinder centred on the z axis and its radius"
            )
        z_min, z_max = vertices[:, 2].min(), vertices[:, 2].max()
        faces = boundary_faces(elements, extension.boundary, nodes)
        return cls(
            extension,
            faces,
            torch.tensor(vertices),
            float(radius),
            float(z_max - z_min),
            (vertices[:, 2] - z_min) / (z_max - z_min),
            radius_modes,
            centreline_modes,
        )

    @property
    def num_modes(self) -> int:
        return self.radius_modes + 2 * self.centreline_modes

    @property
    def length_scale(self) -> float:
        """R0 [m]: the unit of the centreline coefficients."""
        return self.radius

    @property
    def frequencies(self) -> torch.Tensor:
        """(K,) squared axial wavenumbers k (k + 1) (2 / L)^2 of the modes [1/m^2]."""
        k_radius = torch.arange(self.radius_modes, dtype=DTYPE)
        k_line = torch.arange(1, self.centreline_modes + 1, dtype=DTYPE)
        k = torch.cat([k_radius, k_line, k_line])
        return k * (k + 1) * (2 / self.length) ** 2

    def split(self, coefficients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(radius (Kr + 1,), centreline x (Kc,), centreline y (Kc,)) coefficients [-]."""
        c = torch.as_tensor(coefficients, dtype=DTYPE)
        if c.shape != (self.num_modes,):
            raise ValueError(f"coefficients must have shape ({self.num_modes},)")
        kr, kc = self.radius_modes, self.centreline_modes
        return c[:kr], c[kr : kr + kc], c[kr + kc :]

    def profiles(self, coefficients: torch.Tensor, s: np.ndarray) -> dict[str, torch.Tensor]:
        """Relative radius r/R0 [-], centreline u_x, u_y [m] and slopes du/dz [-] at the
        axial positions s = (z - z_min) / L in [0, 1] [-]."""
        a, bx, by = self.split(coefficients)
        radius_basis, line_basis, slope_basis = _legendre_bases(
            np.asarray(s, dtype=np.float64), self.radius_modes, self.centreline_modes, self.length
        )
        return {
            "radius": 1 + radius_basis @ a,
            "x": self.radius * (line_basis @ bx),
            "y": self.radius * (line_basis @ by),
            "slope_x": self.radius * (slope_basis @ bx),
            "slope_y": self.radius * (slope_basis @ by),
        }

    def vertices(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Boundary vertices (B, 3) [m] of the tube with ``coefficients`` (K,) [-]."""
        p = self.profiles(coefficients, self.axial)
        ones = torch.ones_like(p["x"])
        tangent = torch.stack([p["slope_x"], p["slope_y"], ones], 1)
        tangent = tangent / tangent.norm(dim=1, keepdim=True)
        e_x = torch.tensor([1.0, 0.0, 0.0], dtype=DTYPE)
        first = e_x - tangent[:, :1] * tangent
        first = first / first.norm(dim=1, keepdim=True)
        second = torch.linalg.cross(tangent, first, dim=1)
        ref = self.reference_vertices
        centre = torch.stack([p["x"], p["y"], ref[:, 2]], 1)
        section = ref[:, :1] * first + ref[:, 1:2] * second
        return centre + p["radius"][:, None] * section

    def surface(self, coefficients: torch.Tensor) -> SurfaceMesh:
        """The tube as a ``SurfaceMesh`` [m] (for PLY output and distances)."""
        return SurfaceMesh(self.vertices(coefficients).detach().cpu().numpy(), self.faces)

    def roughness(self, coefficients: torch.Tensor) -> torch.Tensor:
        """sum_k k (k + 1) (2 / L)^2 R0^2 c_k^2 [-]: weighted axial Dirichlet energy."""
        c = torch.as_tensor(coefficients, dtype=DTYPE)
        return (self.frequencies * self.radius**2 * c**2).sum()

    def with_modes(self, radius_modes: int, centreline_modes: int) -> TubeShapeSpace:
        """The same reference mesh (and harmonic extension) with other mode counts (for
        coarse-to-fine reconstruction)."""
        if not (isinstance(radius_modes, int) and radius_modes >= 1):
            raise ValueError("radius_modes must be an integer >= 1 (the k = 0 mode is the radius)")
        if not (isinstance(centreline_modes, int) and centreline_modes >= 0):
            raise ValueError("centreline_modes must be an integer >= 0")
        return dataclasses.replace(
            self, radius_modes=radius_modes, centreline_modes=centreline_modes
        )

    def coefficients_from(self, other: TubeShapeSpace, coefficients: torch.Tensor):
        """``other``'s coefficients (K',) [-] in this space's layout: modes this space lacks
        are dropped, modes ``other`` lacks are zero (exact when this space has at least
        ``other``'s modes)."""
        a, bx, by = other.split(coefficients)
        kr, kc = self.radius_modes, self.centreline_modes
        out = torch.zeros(self.num_modes, dtype=DTYPE)
        out[: min(kr, len(a))] = a[:kr]
        out[kr : kr + min(kc, len(bx))] = bx[:kc]
        out[kr + kc : kr + kc + min(kc, len(by))] = by[:kc]
        return out

    def project(self, radius_profile, centreline_x, centreline_y) -> torch.Tensor:
        """Least-squares coefficients (K,) [-] of given profiles: callables of z - z_min [m]
        returning r(z) [m] and the centreline u_x(z), u_y(z) [m] or None for zero (the best the
        space can do for a known target; the centreline's mean is dropped: a translation)."""
        s = np.linspace(0, 1, 401)
        z = s * self.length
        radius_basis, line_basis, _ = _legendre_bases(
            s, self.radius_modes, self.centreline_modes, self.length
        )
        radius_basis, line_basis = radius_basis.numpy(), line_basis.numpy()
        a = np.linalg.lstsq(radius_basis, radius_profile(z) / self.radius - 1, rcond=None)[0]
        parts = [a]
        with_mean = np.concatenate([np.ones((len(s), 1)), line_basis], 1)
        for line in (centreline_x, centreline_y):
            values = np.zeros_like(z) if line is None else line(z) / self.radius
            parts.append(np.linalg.lstsq(with_mean, values, rcond=None)[0][1:])
        return torch.tensor(np.concatenate(parts))


def _legendre_bases(s: np.ndarray, radius_modes: int, centreline_modes: int, length: float):
    """(P_0..P_{Kr} (S, Kr + 1), P_1..P_{Kc} (S, Kc), their z-derivatives (S, Kc) [1/m])
    at x = 2 s - 1."""
    x = 2 * s - 1
    degree = max(radius_modes - 1, centreline_modes)
    values = np.polynomial.legendre.legvander(x, degree)
    slopes = np.stack(
        [
            np.polynomial.legendre.legval(x, np.polynomial.legendre.legder(np.eye(degree + 1)[k]))
            for k in range(degree + 1)
        ],
        1,
    ) * (2 / length)
    line = slice(1, centreline_modes + 1)
    return (
        torch.tensor(values[:, :radius_modes]),
        torch.tensor(values[:, line]),
        torch.tensor(slopes[:, line]),
    )
