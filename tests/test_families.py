"""The family contract: one helper checks every registered family, and every preset's parameter count.

A new family registered in ``ml_resnet_tf.nets.families`` is picked up here with no new test: build,
call, a train step, the ``.keras`` round trip, interpolation, lesions and the trajectory.
"""

import json
import math
import zipfile

import keras
import numpy as np
import pytest

from ml_resnet_tf import interpolate, list_models
from ml_resnet_tf.analysis import probes
from ml_resnet_tf.nets import odenet, registry
from ml_resnet_tf.nets.families.lm_resnet import LMBlock
from ml_resnet_tf.transforms import lesion
from tests import helpers

FAMILIES = sorted({registry.resolve(name).family for name in list_models()})
SHAPE = (16, 16, 3)

# LM-ResNet presets, CIFAR-10 / CIFAR-100. The notes' (§2.3) "without unused" column is 272,387 /
# 466,825 / 661,263 / 855,701 / 1,730,672 on CIFAR-10: ours are 3 lower, the stage-first blocks' k
# that the reference creates and never uses (families/lm_resnet.py).
LM_PARAMS = {
    "lm_resnet20": (272_384, 278_234),
    "lm_resnet32": (466_822, 472_672),
    "lm_resnet44": (661_260, 667_110),
    "lm_resnet56": (855_698, 861_548),
    "lm_resnet110": (1_730_669, 1_736_519),
}


def params(model):
    return sum(math.prod(v.shape) for v in model.trainable_variables)


def outputs(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def trained(family, blocks=(1, 2, 1), step_size=1.0, **options):
    """A small net of ``family`` after a few SGD steps, so no weight or BN statistic is at its initial value."""
    model = registry.build_model(family, 10, SHAPE, step_size, blocks, weight_decay=1e-4, **options)
    rng = np.random.default_rng(0)
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(rng.normal(size=(32,) + SHAPE).astype("float32"), rng.integers(0, 10, 32), batch_size=16,
              epochs=2, verbose=0)
    return model


def images(n=16, seed=1):
    return np.random.default_rng(seed).normal(size=(n,) + SHAPE).astype("float32")


@pytest.mark.parametrize("name", list_models())
def test_every_preset_resolves_to_its_spec(name):
    spec = registry.resolve(name)
    assert spec.name == name and spec.depth == int(name.rsplit(spec.family, 1)[1])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("survival", [1.0, 0.5])
def test_family_contract(family, survival, tmp_path):
    model = trained(family, stochastic_depth=survival)
    x = images()
    spec = registry.NetSpec.from_model(model)
    assert (spec.family, spec.blocks_per_stage, spec.stochastic_depth) == (family, (1, 2, 1), survival)
    assert outputs(model, x).shape == (16, 10) and np.isfinite(outputs(model, x)).all()

    # One train step changes the weights and keeps the loss finite.
    before = [w.copy() for w in model.get_weights()]
    assert np.isfinite(model.train_on_batch(x, np.zeros(16, "int32")))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    # Every block's config round-trips, and the whole model through .keras, outputs identical.
    for block in odenet.blocks(model):
        assert block.__class__.from_config(block.get_config()).get_config() == block.get_config()
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(outputs(reloaded, x), outputs(model, x))
    assert reloaded.spec == model.spec and params(reloaded) == params(model)

    # Interpolation: blocks double per stage, h halves, survival follows the new depth, the input is untouched.
    weights, logits = [w.copy() for w in model.get_weights()], outputs(model, x)
    new = interpolate(model)
    assert odenet.blocks_per_stage(new) == (2, 4, 2) and odenet.step_size(new) == 0.5
    assert registry.NetSpec.from_model(new).blocks_per_stage == (2, 4, 2)
    assert [b.survival for b in odenet.blocks(new)] == pytest.approx(odenet.survival_rates(8, survival))
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    np.testing.assert_array_equal(outputs(model, x), logits)
    assert np.isfinite(outputs(new, x)).all()

    # Lesions: each block deleted, the blocks shuffled; the trajectory has one entry per block.
    for block in odenet.blocks(model):
        assert outputs(lesion.remove_blocks(model, [block.name]), x).shape == (16, 10)
    shuffled = lesion.reorder_blocks(model, lesion.shuffled_order(model, np.random.default_rng(0)))
    assert outputs(shuffled, x).shape == (16, 10)
    norms = probes.residual_norms(new, x)
    assert [n["block"] for n in norms] == [b.name for b in odenet.blocks(new)]
    assert all(np.isfinite(n["residual_norm"]) and n["step_size"] == 0.5 for n in norms)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_refined_net_stays_close_and_closer_as_h_shrinks(family):
    """Both nets discretize one ODE (Sections 3-4): the smaller h, the closer the refined net."""
    weights, x = trained(family, (2, 2, 2)).get_weights(), images(64)
    changes = []
    for h in (0.25, 0.125, 0.0625):
        model = registry.build_model(family, 10, SHAPE, h, (2, 2, 2))
        model.set_weights(weights)  # the same F (and k) at every h: only the discretization differs
        changes.append(probes.compare_models(model, interpolate(model), x)["relative_logit_change"])
    assert changes[1] < 0.75 * changes[0] and changes[2] < 0.75 * changes[1], changes
    assert changes[2] < 0.1, changes


def test_lm_refinement_copies_k_and_gives_euler_copies_k_zero():
    model = trained("lm_resnet", (1, 3, 1))
    new = interpolate(model)
    k = {b.name: float(keras.ops.convert_to_numpy(b.k)) for b in odenet.blocks(new) if b.index > 1}
    old = {b.name: float(keras.ops.convert_to_numpy(b.k)) for b in odenet.blocks(model) if b.index > 1}
    assert k["stage1_block2"] == 0.0  # copied from stage 1's Euler step
    assert k["stage3_block2"] == 0.0  # identity partner of a lone downsampling block
    assert k["stage2_block2"] == k["stage2_block3"] == k["stage2_block4"] == old["stage2_block2"]
    assert k["stage2_block5"] == k["stage2_block6"] == old["stage2_block3"]


def test_lm_step_is_the_two_step_scheme():
    """u_{n+1} = (1 - k) u_n + k u_{n-1} + h f(u_n), with u_{-1} = u_0 at a stage's first step."""
    block = LMBlock(8, step_size=0.5, index=2)
    rng = np.random.default_rng(0)
    u, prev = (rng.normal(size=(2, 4, 4, 8)).astype("float32") for _ in range(2))
    new, carried = block((u, prev), training=False)
    k = float(keras.ops.convert_to_numpy(block.k))
    assert -0.1 <= k <= 0.0
    f = keras.ops.convert_to_numpy(block.residual(u, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new), (1 - k) * u + k * prev + 0.5 * f, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(carried), u)
    euler, _ = block(u, training=False)  # no u_{n-1} yet: forward Euler
    np.testing.assert_allclose(keras.ops.convert_to_numpy(euler), u + 0.5 * f, rtol=1e-5, atol=1e-5)


def test_stochastic_depth_drops_whole_branches_and_scales_at_inference():
    model = registry.build_model("resnet", 10, SHAPE, blocks_per_stage=(2, 2, 2), stochastic_depth=0.5)
    survival = [b.survival for b in odenet.blocks(model)]
    assert survival == pytest.approx([1 - index / 6 * 0.5 for index in range(1, 7)])  # Huang et al.'s linear rule
    block = odenet.blocks(model)[-1]  # p_L = 0.5
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(4, 4, 4, 64)).astype("float32"))
    f = keras.ops.convert_to_numpy(block.step_size * block.residual(x, training=True))
    draws = [keras.ops.convert_to_numpy(block.branch(x, x, training=True)) for _ in range(40)]
    dropped = [np.all(d == 0) for d in draws]
    assert 5 < sum(dropped) < 35  # about half, each for the whole batch
    kept = [d for d, drop in zip(draws, dropped) if not drop]
    np.testing.assert_allclose(kept[0], f, rtol=1e-5, atol=1e-5)  # a kept branch is not rescaled in training
    inference = keras.ops.convert_to_numpy(block.branch(x, x, training=False))
    np.testing.assert_allclose(inference, 0.5 * keras.ops.convert_to_numpy(block.step_size * block.residual(x)),
                               rtol=1e-5, atol=1e-5)


def test_names_and_specs_describe_the_net():
    assert registry.resolve("lm_resnet26").blocks_per_stage == (4, 4, 4)
    assert registry.build_model("lm_resnet50", blocks_per_stage=(2, 2, 2)).name == "lm_resnet14"
    assert registry.build_model("resnet", blocks_per_stage=(1, 2, 3)).name == "resnet_1-2-3"
    with pytest.raises(ValueError, match="is a family"):
        registry.build_model("lm_resnet")
    with pytest.raises(ValueError, match=r"lm_resnet\{6n\+2\}"):
        registry.build_model("lm_resnet21")


def test_models_binary_lists_presets_with_their_parameter_counts():
    result = helpers.run_module("experiments.models", "--families=lm_resnet")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert set(rows) == set(LM_PARAMS)
    for name, (c10, c100) in LM_PARAMS.items():
        assert rows[name][-2:] == [f"{c10:,}", f"{c100:,}"]


def test_models_saved_before_specs_still_load_and_interpolate(tmp_path):
    """Version 0.1 saved a plain Sequential whose blocks knew their stage only by name."""
    model = trained("resnet", (1, 2, 1))
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as source, zipfile.ZipFile(tmp_path / "old.keras", "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config.update(class_name="Sequential", module="keras", registered_name=None)
                config["config"].pop("spec")
                for layer in config["config"]["layers"]:
                    for key in ("stage", "index", "survival"):
                        layer["config"].pop(key, None)
                data = json.dumps(config)
            target.writestr(item, data)
    old = keras.models.load_model(tmp_path / "old.keras")
    assert odenet.blocks_per_stage(old) == (1, 2, 1)
    np.testing.assert_array_equal(outputs(old, images()), outputs(model, images()))
    new = interpolate(old)
    assert odenet.blocks_per_stage(new) == (2, 4, 2) and new.spec["family"] == "resnet"
