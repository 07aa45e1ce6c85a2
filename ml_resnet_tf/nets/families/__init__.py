"""Network families: one file each. Importing this package registers them all (the registry entry),
in this order, which is the order ``list_models`` and ``experiments.models`` show."""

from ml_resnet_tf.nets.families import resnet, lm_resnet, hamiltonian, midpoint, leapfrog  # noqa: I001

__all__ = ["resnet", "lm_resnet", "hamiltonian", "midpoint", "leapfrog"]
