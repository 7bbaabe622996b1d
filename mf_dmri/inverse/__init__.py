"""Inverse problems: maximum-likelihood fitting with uncertainties, parametric tissue
models, Cramer-Rao bounds and protocol design (see docs/inverse.md)."""

from mf_dmri.inverse.design import ProtocolDesign, optimise_protocol
from mf_dmri.inverse.ellipsoid import EllipsoidModel
from mf_dmri.inverse.fisher import CramerRao, cramer_rao_bound, fisher_information
from mf_dmri.inverse.fit import fit
from mf_dmri.inverse.initial import TensorFit, fit_tensor
from mf_dmri.inverse.jacobian import jacobian
from mf_dmri.inverse.likelihood import rician_information, sample_noise
from mf_dmri.inverse.models import MODEL_CUTOFF, CylinderModel, SphereModel
from mf_dmri.inverse.parameters import Parameter, ParameterSpace
from mf_dmri.inverse.protocol import HardwareLimits, PGSEProtocol, as_piece_groups
from mf_dmri.inverse.reconstruct import (
    ReconstructionResult,
    ShapeDistance,
    reconstruct_shape,
    shape_distance,
)
from mf_dmri.inverse.result import Bootstrap, Convergence, FitResult
from mf_dmri.inverse.shape_space import SurfaceShapeSpace
from mf_dmri.inverse.tube_space import TubeShapeSpace

__all__ = [
    "MODEL_CUTOFF",
    "Bootstrap",
    "Convergence",
    "CramerRao",
    "CylinderModel",
    "EllipsoidModel",
    "FitResult",
    "HardwareLimits",
    "PGSEProtocol",
    "Parameter",
    "ParameterSpace",
    "ProtocolDesign",
    "ReconstructionResult",
    "ShapeDistance",
    "SphereModel",
    "SurfaceShapeSpace",
    "TensorFit",
    "TubeShapeSpace",
    "as_piece_groups",
    "cramer_rao_bound",
    "fisher_information",
    "fit",
    "fit_tensor",
    "jacobian",
    "optimise_protocol",
    "reconstruct_shape",
    "rician_information",
    "sample_noise",
    "shape_distance",
]
