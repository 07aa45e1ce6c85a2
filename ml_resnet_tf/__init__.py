"""Multi-level residual networks from the dynamical systems view (Chang et al., ICLR 2018),
for every ODE-discretised family (ResNet, Wide ResNet, LM-ResNet, ...)."""

# Importing the families registers them, and with them every serializable class a saved run
# refers to, so any ``keras.models.load_model`` of a run's .keras file works after
# ``import ml_resnet_tf``; so does the schedule's import.
from ml_resnet_tf.analysis.probes import compare_models, residual_norms
from ml_resnet_tf.nets import families  # noqa: F401
from ml_resnet_tf.nets.families.resnet import ResidualBlock, build_resnet
from ml_resnet_tf.nets.odenet import ODEBlock, ODENet, blocks_per_stage, step_size
from ml_resnet_tf.nets.registry import NetSpec, build_model, list_models
from ml_resnet_tf.training.schedules import CyclicCosineDecay
from ml_resnet_tf.transforms.interpolation import interpolate

__all__ = [
    "CyclicCosineDecay",
    "NetSpec",
    "ODEBlock",
    "ODENet",
    "ResidualBlock",
    "blocks_per_stage",
    "build_model",
    "build_resnet",
    "compare_models",
    "interpolate",
    "list_models",
    "residual_norms",
    "step_size",
]
