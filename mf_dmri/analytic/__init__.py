"""Closed-form references: analytic eigenbases (slab, disk/cylinder, ball/sphere) and
signal approximations (free diffusion, Gaussian phase, narrow pulse)."""

from mf_dmri.analytic.shapes import (
    DEFAULT_CUTOFF,
    ball_basis,
    cylinder,
    disk_basis,
    frame_from_axis,
    free,
    interval_basis,
    slab,
    sphere,
)

__all__ = [
    "DEFAULT_CUTOFF",
    "ball_basis",
    "cylinder",
    "disk_basis",
    "frame_from_axis",
    "free",
    "interval_basis",
    "slab",
    "sphere",
]
