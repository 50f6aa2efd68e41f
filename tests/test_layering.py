"""The package's layering, read from its source (ast): no module imports a layer above its own, and nothing
below the UI imports gradio, plotly or the UI.

    dgmn/ops → dgmn/modules → dgmn/models (with dgmn/export, dgmn/convert) → dgmn/data, dgmn/train, dgmn/evaluate
    → dgmn/inspect → dgmn/viz
    → the UI (dgmn/app) and the command-line entry points (every __main__.py, dgmn/bench, and dgmn/closed_pipe,
      which only entry points use)

``dgmn/viz`` takes arrays and inspection records: from the package it imports ``dgmn.inspect`` only.
``dgmn/__init__.py`` is the facade: its module-level imports stay at the models layer (``dgmn.explore`` is
looked up lazily).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dgmn"
LAYERS = [("ops",), ("modules",), ("models", "export", "convert"), ("data", "train", "evaluate"), ("inspect",), ("viz",),
          ("app", "bench", "closed_pipe")]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
TOP = len(LAYERS) - 1
UI_ONLY = {"gradio", "gradio_client"}  # the UI and entry points only
FIGURES = {"plotly", "kaleido"}  # viz and above


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield path, list(rel.parts)


def layer_of(parts: list[str]) -> int | None:
    """Rank of a module given as ['dgmn', 'inspect', 'explorer']; __main__ files are the top layer."""
    if parts[-1] == "__main__":
        return TOP
    if len(parts) == 1 or parts[1] == "__init__":
        return None  # the facade
    return RANK[parts[1]]


def imports(path: Path, parts: list[str]):
    """(dotted module name, line, inside a function?) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    lazy = {id(n) for f in funcs for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, id(node) in lazy
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # from . import x, y: each is a module or a name of the package
                    for a in node.names:
                        yield f"{name}.{a.name}", node.lineno, id(node) in lazy
                    continue
            else:
                name = node.module
            yield name, node.lineno, id(node) in lazy


def target_layer(name: str) -> int | None:
    parts = name.split(".")
    if parts[0] != "dgmn" or len(parts) == 1:
        return None
    return TOP if parts[1] == "__main__" else RANK.get(parts[1])


def test_the_layers_cover_the_package():
    subpackages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    single = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert subpackages | single <= set(RANK), f"place {sorted((subpackages | single) - set(RANK))} in LAYERS"


@pytest.mark.parametrize("path,parts", list(modules()), ids=lambda v: "/".join(v) if isinstance(v, list) else "")
def test_no_upward_imports(path, parts):
    own = layer_of(parts)
    problems = []
    for name, line, lazy in imports(path, parts):
        root = name.split(".")[0]
        if own is None:  # the facade: light at import time, anything lazily
            if not lazy and ((target_layer(name) or 0) > RANK["models"] or root in UI_ONLY | FIGURES):
                problems.append(f"line {line}: dgmn/__init__ imports {name} at module level")
            continue
        if root in UI_ONLY and own < RANK["app"] and parts[-1] != "__main__":
            problems.append(f"line {line}: imports {name} below the UI")
        if root in FIGURES and own < RANK["viz"] and parts[-1] != "__main__":
            problems.append(f"line {line}: imports {name} below dgmn/viz")
        t = target_layer(name)
        if t is not None and t > own:
            problems.append(f"line {line}: imports {name} (layer {LAYERS[t]}) from layer {LAYERS[own]}")
        if own == RANK["viz"] and t is not None and t < RANK["inspect"]:
            problems.append(f"line {line}: viz imports {name}; it takes arrays and records (dgmn.inspect) only")
    assert not problems, f"{'/'.join(parts)}.py:\n" + "\n".join(problems)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walk itself: a relative import from inspect up to viz is found and ranked."""
    f = tmp_path / "m.py"
    f.write_text("from ..viz import nodes_figure\ndef g():\n    import gradio\n")
    found = list(imports(f, ["dgmn", "inspect", "m"]))
    assert ("dgmn.viz", 1, False) in found and ("gradio", 3, True) in found
    assert target_layer("dgmn.viz") > layer_of(["dgmn", "inspect", "m"])
