"""Builders: Table 5's parameter counts, output shapes, names, serialization."""

import io
import os
from contextlib import redirect_stdout

import keras
import numpy as np
import pytest

from ml_resnet_tf import blocks_per_stage, build_model, build_resnet, step_size
from ml_resnet_tf.nets.registry import resolve

# Table 5 (Appendix A): trainable parameters. Its last row, printed "ResNet-122", is WResNet-122.
TABLE5 = {
    "resnet14": (172_506, 178_356, 172_506),
    "resnet50": (755_802, 761_652, 755_802),
    "resnet32": (464_154, 470_004, 464_154),
    "resnet122": (1_922_394, 1_928_244, 1_922_394),
    "wresnet14": (685_994, 697_604, 685_994),
    "wresnet50": (3_013_802, 3_025_412, 3_013_802),
    "wresnet32": (1_849_898, 1_861_508, 1_849_898),
    "wresnet122": (7_669_418, 7_681_028, 7_669_418),
}
DATASETS = {"cifar10": (10, (32, 32, 3)), "cifar100": (100, (32, 32, 3)), "stl10": (10, (96, 96, 3))}


def trainable_params(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize("name", TABLE5)
@pytest.mark.parametrize("column, dataset", enumerate(DATASETS))
def test_table5_parameter_counts(name, column, dataset):
    num_classes, input_shape = DATASETS[dataset]
    assert trainable_params(build_model(name, num_classes, input_shape)) == TABLE5[name][column]


@pytest.mark.parametrize("dataset", DATASETS)
def test_output_shape(dataset):
    num_classes, input_shape = DATASETS[dataset]
    model = build_model("resnet14", num_classes, input_shape)
    assert model.predict(np.zeros((2,) + input_shape, "float32"), verbose=0).shape == (2, num_classes)


@pytest.mark.parametrize("name, blocks, width", [
    ("resnet14", (2, 2, 2), 16), ("resnet50", (8, 8, 8), 16), ("resnet110", (18, 18, 18), 16),
    ("resnet8", (1, 1, 1), 16), ("wresnet32", (5, 5, 5), 32), ("wresnet122", (20, 20, 20), 32),
])
def test_parse_model_name(name, blocks, width):
    spec = resolve(name)
    assert (spec.blocks_per_stage, spec.widths[0]) == (blocks, width)


@pytest.mark.parametrize("name, hint", [
    ("resnet", "is a family"), ("resnet15", r"resnet depths are resnet\{6n\+2\} with n >= 1, e.g. resnet26"),
    ("resnet2", r"resnet\{6n\+2\}"), ("vgg16", "such as resnet110, lm_resnet56 or hamiltonian74"),
    ("ResNet50", "python -m experiments.models lists them all"), ("resnet50x", "use a preset or a depth name")])
def test_unknown_model_names_are_refused_in_under_200_characters(name, hint):
    with pytest.raises(ValueError, match=hint) as refused:
        build_model(name)
    assert len(str(refused.value)) < 200 - len("error: --model: ")


def test_stages_widths_and_step_size():
    model = build_resnet((3, 5, 7), base_width=8, step_size=0.5, name="uneven")
    assert blocks_per_stage(model) == (3, 5, 7)
    assert step_size(model) == 0.5
    assert [model.get_layer(f"stage{s}_block1").filters for s in (1, 2, 3)] == [8, 16, 32]
    assert [model.get_layer(f"stage{s}_block1").strides for s in (1, 2, 3)] == [1, 2, 2]
    assert model.output_shape == (None, 10)


def test_summary_names_blocks_by_stage_and_index():
    out = io.StringIO()
    with redirect_stdout(out):
        build_model("resnet32").summary()
    assert "stage2_block3 (ResidualBlock)" in out.getvalue()
    assert "stage3_block5" in out.getvalue()


def test_weight_decay_adds_coupled_l2_on_kernels():
    model = build_resnet((1, 1, 1), weight_decay=2e-4)
    kernels = [v for v in model.trainable_variables if "kernel" in v.path]
    expected = sum(1e-4 * float(np.sum(keras.ops.convert_to_numpy(v) ** 2)) for v in kernels)
    model(np.zeros((1, 32, 32, 3), "float32"))
    assert len(model.losses) == len(kernels)  # stem, 2 per block, classifier; no batch norm
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses)) == pytest.approx(expected, rel=1e-4)


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    model = build_resnet((1, 2, 1), step_size=0.5, weight_decay=2e-4)
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(4), verbose=0)  # moves the batch-norm statistics away from their initial values
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert blocks_per_stage(reloaded) == (1, 2, 1) and step_size(reloaded) == 0.5
