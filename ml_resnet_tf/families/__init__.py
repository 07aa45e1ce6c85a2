"""Network families: one file each. Importing this package registers them all (the registry entry)."""

from ml_resnet_tf.families import lm_resnet, resnet

__all__ = ["lm_resnet", "resnet"]
