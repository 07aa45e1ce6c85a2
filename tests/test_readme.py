"""The README's library example runs and prints what it says."""

import contextlib
import io
import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_example():
    (code,) = re.findall(r"```python\n(.*?)```", open(README).read(), flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert "(4, 4, 4) 0.5" in out.getvalue()
    assert "stage3_block4" in out.getvalue()


def test_readme_flag_table_is_generated_from_the_config():
    from ml_resnet_tf.training import config

    assert config.flag_table() in open(README).read(), "README's flag table is stale: paste config.flag_table()"
