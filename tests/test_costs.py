"""Theoretical time saved (Section 4.2, Table 2) and counted FLOPs."""

import pytest

from ml_resnet_tf import build_model, build_resnet
from ml_resnet_tf.nets.costs import flops_per_image, table2, time_saved


@pytest.mark.parametrize("interpolations, saved", [(0, 0), (1, 25), (2, 42), (3, 53), (4, 61), (5, 67)])
def test_table2(interpolations, saved):
    assert round(100 * table2(interpolations)) == saved


def test_the_papers_schedule_saves_43_75_percent_by_blocks():
    # 60 / 50 / 50 epochs on 2-2-2, 4-4-4, 8-8-8 blocks (Section 5.2), against 160 epochs of 8-8-8.
    assert time_saved([60, 50, 50], [6, 12, 24]) == pytest.approx(0.4375)


def test_flops_of_a_model_small_enough_to_count_by_hand():
    model = build_resnet((1,), base_width=2, num_classes=3, input_shape=(4, 4, 1))
    stem = 2 * 16 * 9 * 1 * 2                      # 4x4 outputs, 3x3x1 kernel, 2 filters
    block = 3 * 32 + 2 * 16 * 9 * 2 * 2 + 3 * 32 + 2 * 16 * 9 * 2 * 2 + 2 * 32  # bn1+relu, conv1, bn2+relu, conv2, add
    head = 2 * 32 + 32 + 32 + (2 * 2 * 3 + 3)     # final bn, relu, pool, dense
    assert flops_per_image(model) == stem + block + head == 3279


def test_flops_grow_with_depth_and_include_stem_and_classifier():
    f14, f26, f50 = (flops_per_image(build_model(n)) for n in ("resnet14", "resnet26", "resnet50"))
    assert f14 < f26 < f50
    # Blocks dominate, so cost follows the block count (4x from 2-2-2 to 8-8-8) but not exactly:
    # inserted blocks are full-width copies, dearer than the downsampling blocks they follow.
    assert 3.5 < f50 / f14 < 4.5 and f50 / f14 != 4
    assert 40e6 < f14 < 80e6  # ResNet-14 on CIFAR: about 2 x 27M multiply-adds in its convolutions
    # STL-10's 96x96 images cost 9x the 32x32 ones.
    assert flops_per_image(build_model("resnet14", input_shape=(96, 96, 3))) == pytest.approx(9 * f14, rel=1e-3)
