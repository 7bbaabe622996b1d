"""Geometry registry: a named builder + SI arguments -> the compartments of one geometry.

A builder turns numeric parameters (sweepable, SI) and fixed options (vectors, strings,
file names) into ``{compartment name: ProductDomain}``.  This is the costly step of a
sweep (an eigen-solve for a mesh): the engine calls it once per geometry point and reuses
the result for every tissue value and acquisition.  Every geometry parameter, including
the mode cutoff ``length_scale``, therefore forces a new solve; diffusivity, T2, spin
density, timings, b-values and directions never do.

A *coupled* builder (``coupled=True``, see ``mf_dmri.sweep.coupled_shapes``) builds nested
compartments that exchange through permeable membranes and returns their labelled mesh, a
:class:`~mf_dmri.sweep.nested.NestedMesh`: its eigenproblem contains the tissue values
(diffusivity, T2, spin density, permeability, surface relaxivity), so the engine solves
it per tissue point, and the plan makes every tissue point of such a geometry a geometry
point of its own.

The registry is an immutable mapping passed explicitly to the engine (and shipped to Ray
workers), so a caller adds builders with :meth:`GeometryRegistry.with_builder` without
touching global state.  ``DEFAULT_REGISTRY`` holds the analytic shapes; the mesh
generators are in ``mf_dmri.sweep.mesh_shapes`` and mesh files are added by
``mf_dmri.io.sweep_toml.default_registry`` (file reading belongs to ``io``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mf_dmri.analytic import cylinder, free, slab, sphere
from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.plausibility import Plausibility, as_plausibility

if TYPE_CHECKING:  # imported when a coupled builder runs (it pulls in fem and geometry)
    from mf_dmri.sweep.nested import NestedMesh

#: Physical quantity of a parameter; the TOML reader maps each to its accepted units.
QUANTITIES = ("length", "time", "diffusivity", "bvalue", "frequency", "gradient", "none")

BuildFunction = Callable[[Mapping[str, float], Mapping[str, Any], Plausibility], Any]


@dataclass(frozen=True)
class GeometryBuilder:
    """One registered geometry family.

    Args:
        name: registry key (the TOML ``shape``).
        build: ``build(parameters, options, plausibility) -> {compartment:
            ProductDomain}``; parameters are SI floats, options are fixed values (vectors
            [-], strings, paths), ``plausibility`` is the sweep's override of the range
            checks (``mf_dmri.plausibility``, for the shape constructors); a coupled
            builder returns a ``NestedMesh`` instead.
        parameters: quantity of every numeric parameter (see ``QUANTITIES``).
        required: the parameters that must be given.
        options: names of the accepted fixed options, with a one-line description each.
        description: one line shown by ``mf-dmri sweep --list-shapes``.
        coupled: the builder's eigenproblem contains the tissue values (see the module
            docstring).
    """

    name: str
    build: BuildFunction
    parameters: Mapping[str, str]
    required: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    coupled: bool = False

    def __post_init__(self) -> None:
        unknown = {q for q in self.parameters.values() if q not in QUANTITIES}
        if unknown:
            raise ValueError(f"{self.name}: unknown quantities {sorted(unknown)}")
        missing = set(self.required) - set(self.parameters)
        if missing:
            raise ValueError(f"{self.name}: required parameters {sorted(missing)} undeclared")
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def check(self, parameter_names: set[str], option_names: set[str]) -> None:
        """Raise a ValueError naming unknown or missing parameters/options."""
        unknown = parameter_names - set(self.parameters)
        if unknown:
            raise ValueError(
                f"geometry '{self.name}' has no parameter {sorted(unknown)}; "
                f"its parameters are {sorted(self.parameters)}"
            )
        unknown_options = option_names - set(self.options)
        if unknown_options:
            raise ValueError(
                f"geometry '{self.name}' has no option {sorted(unknown_options)}; "
                f"its options are {sorted(self.options) or 'none'}"
            )
        missing = set(self.required) - parameter_names
        if missing:
            raise ValueError(f"geometry '{self.name}' needs the parameters {sorted(missing)}")

    def __call__(
        self,
        parameters: Mapping[str, float],
        options: Mapping[str, Any],
        plausibility: Plausibility | None = None,
    ) -> dict[str, ProductDomain] | NestedMesh:
        """Build one geometry (a ``NestedMesh`` for a coupled builder); ``plausibility``:
        the override of the range checks (None: checked)."""
        self.check(set(parameters), set(options))
        plausibility = as_plausibility(plausibility)
        if self.coupled:
            from mf_dmri.sweep.nested import NestedMesh

            nested = self.build(parameters, options, plausibility)
            if not isinstance(nested, NestedMesh):
                raise TypeError(f"coupled builder '{self.name}' must return a NestedMesh")
            return nested
        domains = self.build(parameters, options, plausibility)
        if not domains or not all(isinstance(d, ProductDomain) for d in domains.values()):
            raise TypeError(f"builder '{self.name}' must return {{name: ProductDomain}}")
        return dict(domains)


@dataclass(frozen=True)
class GeometryRegistry:
    """Immutable name -> ``GeometryBuilder`` mapping."""

    builders: Mapping[str, GeometryBuilder] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "builders", MappingProxyType(dict(self.builders)))

    def __getitem__(self, name: str) -> GeometryBuilder:
        try:
            return self.builders[name]
        except KeyError:
            raise ValueError(
                f"unknown geometry shape {name!r}; registered shapes: {sorted(self.builders)}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self.builders

    def names(self) -> list[str]:
        return sorted(self.builders)

    def with_builder(self, builder: GeometryBuilder) -> GeometryRegistry:
        """A new registry with ``builder`` added (replacing one of the same name)."""
        return GeometryRegistry({**self.builders, builder.name: builder})

    # MappingProxyType does not pickle (Ray ships the registry to workers).
    def __reduce__(self):
        return (GeometryRegistry, (dict(self.builders),))


def _cutoff(parameters: Mapping[str, float], plausibility: Plausibility) -> dict[str, Any]:
    scale = parameters.get("length_scale")
    cutoff: dict[str, Any] = {"plausibility": plausibility}
    return cutoff if scale is None else {**cutoff, "length_scale": float(scale)}


def _axis(options: Mapping[str, Any], default=(0.0, 0.0, 1.0)) -> tuple[float, float, float]:
    axis = options.get("axis", default)
    if not (isinstance(axis, (list, tuple)) and len(axis) == 3):
        raise ValueError(f"option axis must be a 3-vector [x, y, z], got {axis!r}")
    return tuple(float(a) for a in axis)


def _build_cylinder(parameters, options, plausibility):
    length = parameters.get("length")
    domain = cylinder(
        float(parameters["radius"]),
        _axis(options),
        length=None if length is None else float(length),
        **_cutoff(parameters, plausibility),
    )
    return _with_extra({options.get("compartment", "intra"): domain}, options)


def _with_extra(domains: dict[str, ProductDomain], options) -> dict[str, ProductDomain]:
    """Add the free compartment ``extra`` when ``options['extra'] == 'free'``."""
    kind = options.get("extra")
    if kind is None:
        return domains
    if kind != "free":
        raise ValueError(f"extra must be 'free' (a Gaussian compartment), got {kind!r}")
    if "extra" in domains:
        raise ValueError("compartment name 'extra' is taken: rename the shape's compartment")
    return {**domains, "extra": free()}


def _build_sphere(parameters, options, plausibility):
    domain = sphere(float(parameters["radius"]), **_cutoff(parameters, plausibility))
    return _with_extra({options.get("compartment", "intra"): domain}, options)


def _build_slab(parameters, options, plausibility):
    domain = slab(
        float(parameters["width"]),
        _axis(options, (1.0, 0.0, 0.0)),
        **_cutoff(parameters, plausibility),
    )
    return _with_extra({options.get("compartment", "intra"): domain}, options)


_COMPARTMENT = {
    "compartment": "name of the shape's compartment (default 'intra')",
    "extra": "'free': add a free (Gaussian) compartment named 'extra' (needs fractions)",
}

DEFAULT_REGISTRY = GeometryRegistry(
    {
        "cylinder": GeometryBuilder(
            "cylinder",
            _build_cylinder,
            {"radius": "length", "length": "length", "length_scale": "length"},
            required=("radius",),
            options={"axis": "cylinder axis, 3-vector [-] (default z)", **_COMPARTMENT},
            description="analytic cylinder (disk x free axis, or x interval if length given)",
        ),
        "sphere": GeometryBuilder(
            "sphere",
            _build_sphere,
            {"radius": "length", "length_scale": "length"},
            required=("radius",),
            options=_COMPARTMENT,
            description="analytic impermeable sphere",
        ),
        "slab": GeometryBuilder(
            "slab",
            _build_slab,
            {"width": "length", "length_scale": "length"},
            required=("width",),
            options={"axis": "plane normal, 3-vector [-] (default x)", **_COMPARTMENT},
            description="analytic slab between two parallel planes",
        ),
    }
)
