"""mf_dmri: a differentiable diffusion-MRI simulator (matrix formalism, PyTorch)."""

from mf_dmri.eigenbasis import Eigenbasis

__version__ = "0.1.0"

__all__ = ["Eigenbasis", "__version__"]
