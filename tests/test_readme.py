"""The README's Python blocks run as written and do what they claim."""

import ast
import contextlib
import io
import pathlib
import re

import jax
import jax.numpy as jnp

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_quick_start_blocks_run_and_learn():
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(blocks[0] + blocks[1], str(README), "exec"), namespace)
    printed = output.getvalue()
    accuracy = float(re.search(r"accuracy (\S+)", printed).group(1))
    assert accuracy > 0.95, printed
    scores = ast.literal_eval(printed.strip().splitlines()[-1])  # the evaluate() dict
    assert scores["accuracy"] > 0.9 and scores["f1"] > 0.9, scores


def test_transformer_block_snippet_builds_a_language_model():
    block = next(b for b in python_blocks() if "def transformer_block" in b)
    namespace = {}
    exec(compile(block, str(README), "exec"), namespace)
    model = namespace["language_model"]
    params, state = model.init(jax.random.key(0), (16,))
    logits, _ = model.apply(params, state, jnp.zeros((2, 16), jnp.int32))
    assert logits.shape == (2, 16, 60)
