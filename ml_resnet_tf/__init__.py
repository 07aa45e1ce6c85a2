"""Multi-level residual networks from the dynamical systems view (Chang et al., ICLR 2018)."""

from ml_resnet_tf.analysis import compare_models, residual_norms
from ml_resnet_tf.interpolation import interpolate
from ml_resnet_tf.layers import ResidualBlock
from ml_resnet_tf.models import blocks_per_stage, build_model, build_resnet, step_size

__all__ = [
    "ResidualBlock",
    "blocks_per_stage",
    "build_model",
    "build_resnet",
    "compare_models",
    "interpolate",
    "residual_norms",
    "step_size",
]
