"""Imports point one way: train uses the rest, the step never imports evaluation, and the
private checks use nothing of fnnet (no import cycles to untangle later)."""

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "fnnet"


def fnnet_imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fnnet"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("fnnet")}
    return found


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("_checks.py", ("fnnet",)),
        ("train/step.py", ("fnnet.train.evaluation", "fnnet.train.fit", "fnnet.train.epoch")),
        ("train/state.py", ("fnnet.train.",)),
        ("data/__init__.py", ("fnnet.train",)),
        ("data/sources.py", ("fnnet.train",)),
        ("data/prefetch.py", ("fnnet.train",)),
        ("datasets/files.py", ("fnnet.train",)),
        ("optim/_hyperparams.py", ("fnnet.optim._base", "fnnet.train")),
    ],
)
def test_imports_point_one_way(module, forbidden):
    imports = fnnet_imports(SRC / module)
    bad = sorted(name for name in imports if name.startswith(forbidden))
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("package", ["nn", "optim", "data", "datasets", "losses.py", "metrics.py"])
def test_lower_layers_do_not_import_train(package):
    paths = [SRC / package] if package.endswith(".py") else sorted((SRC / package).glob("*.py"))
    for path in paths:
        assert not [n for n in fnnet_imports(path) if n.startswith("fnnet.train")], path
