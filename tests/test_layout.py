"""The package's layering, as gmp/__init__.py states it: a module imports only from its own
layer and the layers above it (lower numbers)."""

import ast
from pathlib import Path

import gmp

PKG = Path(gmp.__file__).parent
LAYER = {
    "files": 0, "provenance": 0,
    "geometry": 1, "symbolic": 1, "data": 1, "formatting": 1,
    "nn": 2, "params": 2, "layers": 2, "baselines": 2, "models": 2, "convert": 2,
    "cab": 3, "perturbation": 3, "overhead": 3, "plotting": 3,
    "animation": 3,
    "experiments": 4, "train": 4,
}


def _imports(path: Path) -> set[str]:
    """The top-level gmp submodules ``path`` imports (relative or absolute)."""
    rel = path.relative_to(PKG).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = list(rel[:-1])[: len(rel) - node.level]
                parts = pkg + (node.module.split(".") if node.module else [])
                out |= {parts[0]} if parts else {a.name for a in node.names}
            elif node.module and node.module.startswith("gmp."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("gmp.")}
    return out


def test_every_module_has_a_layer_and_imports_only_upward():
    modules = {p.relative_to(PKG).parts[0].removesuffix(".py") for p in PKG.glob("*")
               if p.suffix == ".py" or (p / "__init__.py").exists()} - {"__init__"}
    assert modules == set(LAYER), "update LAYER and the map in gmp/__init__.py"
    wrong = []
    for path in PKG.rglob("*.py"):
        me = path.relative_to(PKG).parts[0].removesuffix(".py")
        if me == "__init__":
            continue
        wrong += [f"{path.relative_to(PKG)} imports gmp.{dep}" for dep in _imports(path)
                  if dep in LAYER and LAYER[dep] > LAYER[me]]
    assert not wrong, wrong


def test_the_map_names_every_module():
    doc = gmp.__doc__
    for name in LAYER:
        assert f":mod:`gmp.{name}`" in doc, name


def test_the_experiments_map_names_every_experiments_module():
    import gmp.experiments

    doc = gmp.experiments.__doc__
    names = {p.stem for p in (PKG / "experiments").glob("*.py")} - {"__init__", "__main__"}
    missing = sorted(n for n in names if f":mod:`~gmp.experiments.{n}`" not in doc)
    assert not missing, f"name them in gmp/experiments/__init__.py: {missing}"
