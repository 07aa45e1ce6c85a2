"""The layout is the architecture: what `make lint`'s import contracts do not check, checked here."""

import ast
import pathlib

import keras
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(__file__).resolve().parent / "data"
MAX_LINES = 300  # "no module over about 300 lines" (docs/architecture.md)


def modules(*folders):
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("ml_resnet_tf", "experiments"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _runs_app(tree) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return "app.run(" in ast.unparse(node)
    return False


def test_experiments_holds_binaries_only():
    """Every module of experiments/ is an absl binary; what they share lives in ml_resnet_tf.cli."""
    found = [p for p in (ROOT / "experiments").glob("*.py") if p.name != "__init__.py"]
    assert found
    assert [p.name for p in found if not _runs_app(ast.parse(p.read_text()))] == []


FAMILIES = ["resnet", "lm_resnet", "hamiltonian", "midpoint", "leapfrog"]


@pytest.mark.parametrize("family", FAMILIES)
def test_keras_files_saved_before_the_new_layout_still_load(family):
    """Files saved by 0.1.0's flat layout (tests/data, a compiled 1-1-1 net with the cyclic schedule) load
    and give the logits they gave then: the registered names did not move with the modules."""
    import ml_resnet_tf  # noqa: F401  (registers the serializable classes)

    model = keras.models.load_model(DATA / f"v0.1.0-{family}.keras")
    assert model.spec["family"] == family
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(DATA / f"v0.1.0-{family}-logits.npy"),
                               rtol=1e-5, atol=1e-6)
