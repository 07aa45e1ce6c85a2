"""A native PyTorch twin of the ``resnet`` and ``wresnet`` families, for ``make bench --reference=torch``.

Users weigh a framework by how fast the same net trains in it, so the bench times this beside our
Keras trainer in one run. It is the net of ``families/resnet.py`` written the way a PyTorch user
would write it, not a port of our abstractions: a 3x3 stem, pre-activation blocks
``Y + h F(Y)`` (Eq. 2) with the parameter-free subsample-and-zero-pad shortcut, then
BN -> ReLU -> global average pooling -> linear. A strided convolution pads as TensorFlow's "same"
does (nothing before, one row and column after), so that the same weights give the same function
(tested). ``check_same_net`` asserts that its trainable parameters and batch-norm statistics count
exactly what the Keras model counts.

One training step is what ``model.fit`` does per step: forward, cross-entropy, backward, SGD with
momentum 0.9 and weight decay on conv and linear kernels only (Keras' L2 of 2e-4 adds
``2 * 2e-4 * w`` to the gradient, so the decay here is 4e-4), and the accuracy metric. Channels
first, PyTorch's native layout. ``compiled=True`` wraps the model in ``torch.compile`` (inductor,
which needs a C++ compiler on a CPU); the optimizer step stays eager in both.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

WIDTHS = {"resnet": (16, 32, 64), "wresnet": (32, 64, 128)}
BN = {"momentum": 0.1, "eps": 1e-5}  # Keras' momentum 0.9 is PyTorch's 0.1


class Block(nn.Module):
    """``Y_{j+1} = P(Y_j) + h F(Y_j)``, F = BN -> ReLU -> conv -> BN -> ReLU -> conv."""

    def __init__(self, in_channels: int, channels: int, stride: int, step_size: float):
        super().__init__()
        self.stride, self.channels, self.step_size = stride, channels, step_size
        self.bn1 = nn.BatchNorm2d(in_channels, **BN)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1 if stride == 1 else 0, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, **BN)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.bn1(x))
        if self.stride == 2:
            y = F.pad(y, (0, 1, 0, 1))  # TensorFlow's "same" for stride 2 on an even size
        branch = self.conv2(F.relu(self.bn2(self.conv1(y))))
        shortcut = x[:, :, ::2, ::2] if self.stride == 2 else x
        if shortcut.shape[1] < self.channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.channels - shortcut.shape[1]))
        return shortcut + self.step_size * branch


def build(family: str, blocks, num_classes: int = 10, step_size: float = 1.0) -> nn.Sequential:
    """The ``family`` net with ``blocks`` per stage; raises ValueError for a family it has no twin of."""
    if family not in WIDTHS:
        raise ValueError(f"--reference=torch has a twin of {' and '.join(WIDTHS)} only, not {family}")
    widths = WIDTHS[family]
    layers, channels = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)], widths[0]
    for stage, (count, width) in enumerate(zip(blocks, widths)):
        for index in range(count):
            layers.append(Block(channels, width, 2 if stage and not index else 1, step_size))
            channels = width
    layers += [nn.BatchNorm2d(channels, **BN), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(channels, num_classes)]
    net = nn.Sequential(*layers)
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)  # Keras' he_normal
    return net


def counts(net: nn.Module) -> tuple[int, int]:
    """(trainable parameters, batch-norm statistics): Keras' trainable and non-trainable counts."""
    stats = sum(b.numel() for name, b in net.named_buffers() if name.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in net.parameters() if p.requires_grad), stats


def check_same_net(net: nn.Module, keras_model) -> None:
    """Raises AssertionError unless ``net`` counts the same parameters as ``keras_model``."""
    ours = (sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights),
            sum(int(np.prod(w.shape)) for w in keras_model.non_trainable_weights))
    assert counts(net) == ours, f"PyTorch twin counts {counts(net)} (trainable, statistics), Keras {ours}"


def trainer(net: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int, compiled: bool = False,
            weight_decay: float = 2e-4, learning_rate: float = 0.1):
    """A callable that trains ``net`` one pass over ``images`` (NHWC, standardized) in batches."""
    decayed = [p for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in [m.weight]]
    others = [p for p in net.parameters() if all(p is not d for d in decayed)]
    optimizer = torch.optim.SGD([{"params": decayed, "weight_decay": 2 * weight_decay},
                                 {"params": others, "weight_decay": 0.0}], lr=learning_rate, momentum=0.9)
    forward = torch.compile(net) if compiled else net
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    net.train()

    def epoch():
        correct = torch.zeros((), dtype=torch.int64)
        for start in range(0, len(x) - batch_size + 1, batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            logits = forward(xb)
            F.cross_entropy(logits, yb).backward()
            optimizer.step()
            correct += (logits.detach().argmax(-1) == yb).sum()
        return int(correct)

    return epoch
