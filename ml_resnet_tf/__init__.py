"""Multi-level residual networks from the dynamical systems view (Chang et al., ICLR 2018)."""

from ml_resnet_tf.analysis import compare_models, residual_norms
from ml_resnet_tf.interpolation import interpolate
from ml_resnet_tf.layers import ResidualBlock
from ml_resnet_tf.models import blocks_per_stage, build_model, build_resnet, step_size
# Importing the package registers every serializable class a saved run refers to, so any
# ``keras.models.load_model`` of a run's .keras file works after ``import ml_resnet_tf``.
from ml_resnet_tf.schedules import CyclicCosineDecay

__all__ = [
    "CyclicCosineDecay",
    "ResidualBlock",
    "blocks_per_stage",
    "build_model",
    "build_resnet",
    "compare_models",
    "interpolate",
    "residual_norms",
    "step_size",
]
