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


def run(*blocks: str) -> tuple[dict, str]:
    """Executes README blocks one after another in one namespace; returns it and the output."""
    namespace, output = {}, io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile("".join(blocks), str(README), "exec"), namespace)
    return namespace, output.getvalue()


def test_quick_start_blocks_run_and_learn():
    blocks = python_blocks()
    assert len(blocks) >= 2
    _, printed = run(blocks[0], blocks[1])
    accuracy = float(re.search(r"accuracy (\S+)", printed).group(1))
    assert accuracy > 0.95, printed
    scores = ast.literal_eval(printed.strip().splitlines()[-1])  # the evaluate() dict
    assert scores["accuracy"] > 0.9 and scores["f1"] > 0.9, scores


def test_transformer_block_snippet_builds_a_language_model():
    block = next(b for b in python_blocks() if "def transformer_block" in b)
    model = run(block)[0]["language_model"]
    params, state = model.init(jax.random.key(0), (16,))
    logits, _ = model.apply(params, state, jnp.zeros((2, 16), jnp.int32))
    assert logits.shape == (2, 16, 60)


def test_custom_loop_runs_after_the_quick_start_and_learns():
    blocks = python_blocks()
    loop = next(b for b in blocks if "on_epoch_end(" in b)
    namespace, printed = run(blocks[0], blocks[1], loop)
    last = printed.strip().splitlines()[-1]
    match = re.fullmatch(r"epoch (\d+): val_accuracy (\S+), lr (\S+)", last)
    assert match, last
    assert 1 <= int(match.group(1)) <= 100 and float(match.group(2)) > 0.9, last
    assert int(namespace["state"].step) > 0


def test_vmap_over_learning_rates_snippet():
    block = next(b for b in python_blocks() if "jax.vmap(minimise)" in b)
    _, printed = run(block)
    finals = [float(v) for v in re.findall(r"[-\d.]+", printed)]
    assert len(finals) == 3 and finals[0] < finals[1] < finals[2] <= 3.1, finals


def test_saving_and_loading_snippet_round_trips_the_quick_start_model():
    blocks = python_blocks()
    snippet = next(b for b in blocks if "checkpoint.save(path" in b)
    namespace, printed = run(blocks[0], blocks[1], snippet)
    loaded, saved = namespace["state"], namespace["result"].state
    assert jax.tree.all(
        jax.tree.map(lambda a, b: bool((a == b).all()), loaded.params, saved.params)
    )
    last = printed.strip().splitlines()[-1]  # "{metadata} {scores}"
    metadata, scores = (ast.literal_eval(part + "}") for part in last[:-1].split("} "))
    assert set(metadata) == {"val_accuracy"} and scores["accuracy"] > 0.9, last


def test_repeat_snippet_builds_a_deep_language_model_of_one_block_program():
    blocks = python_blocks()
    definition = next(b for b in blocks if "def transformer_block" in b)
    deep = next(b for b in blocks if "nn.repeat(transformer_block" in b)
    model = run(definition, deep)[0]["deep_model"]
    params, state = model.init(jax.random.key(0), (16,))
    assert params[1][0][1]["query"]["w"].shape == (32, 64, 64)  # 32 stacked copies
    logits, _ = model.apply(params, state, jnp.zeros((2, 16), jnp.int32))
    assert logits.shape == (2, 16, 60)


def test_bfloat16_snippet_trains_float32_master_weights():
    blocks = python_blocks()
    snippet = next(b for b in blocks if 'precision="bfloat16"' in b)
    namespace, printed = run(blocks[0], blocks[1], snippet)
    scores = ast.literal_eval(printed.strip().splitlines()[-1])
    assert scores["accuracy"] > 0.9, scores
    assert {leaf.dtype for leaf in jax.tree.leaves(namespace["result"].state.params)} == {
        jnp.dtype(jnp.float32)
    }


def test_memory_mapped_mnist_block_trains_on_idx_files(tmp_path, monkeypatch):
    from test_dataset_files import mnist_like

    (tmp_path / "data" / "mnist").mkdir(parents=True)
    mnist_like(tmp_path / "data" / "mnist", n=256)
    monkeypatch.chdir(tmp_path)
    block = next(b for b in python_blocks() if "datasets.load_mnist" in b)
    namespace, printed = run(block)
    assert "streamed from the host" in printed
    assert int(namespace["result"].state.step) == 5 * 2
