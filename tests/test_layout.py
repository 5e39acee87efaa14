"""The package's layering, as gmp/__init__.py states it: a module imports only from its own
layer and the layers above it (lower numbers)."""

import ast
import re
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


# ---------------------------------------------------------------------------------------
# one place per choice: what a parameterization or a task is is asked, not compared
# ---------------------------------------------------------------------------------------
ROOT = PKG.parent
PARAM_NAMES = {"sp", "wn", "bn", "gmp", "wn_mbn", "gmp_imn"}
TASK_NAMES = {"levy", "banana"}
#: The comparisons with a param name allowed outside the registry, and why.
PARAM_COMPARISONS_ALLOWED = {
    # the registry itself: a preset's read-out named "gmp" (a preset value)
    "gmp/params.py": 1,
    # the per-split figure is normalized by SP, the baseline of Table 1
    "gmp/experiments/uci_report.py": 1,
}


def _compared_strings(path: Path) -> list[tuple[int, str]]:
    """``(line, string)`` for every string constant compared (``==``, ``in``, ...) in
    ``path``, alone or inside a literal tuple, list or set."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            elts = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            out += [(node.lineno, e.value) for e in elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return out


def test_no_module_branches_on_a_task_name():
    """Levy and Banana are gmp.experiments.tasks.Task objects: nothing asks which one."""
    hits = [f"{p.relative_to(ROOT)}:{line} {s!r}" for p in PKG.rglob("*.py")
            for line, s in _compared_strings(p) if s in TASK_NAMES]
    assert not hits, hits


def test_param_names_are_compared_only_where_allowed():
    """What a parameterization is lives in its spec (gmp.params): modules ask the spec."""
    counts: dict[str, list[int]] = {}
    for p in PKG.rglob("*.py"):
        for line, s in _compared_strings(p):
            if s in PARAM_NAMES:
                counts.setdefault(str(p.relative_to(ROOT)), []).append(line)
    wrong = {f: lines for f, lines in counts.items()
             if len(lines) > PARAM_COMPARISONS_ALLOWED.get(f, 0)}
    assert not wrong, wrong


def test_every_exported_name_is_used():
    """A name in an ``__all__`` is used by the package's code (its own module included), the
    tests, the benchmarks or the book."""
    corpus = [f for d in ("gmp", "tests", "benchmarks", "book", "notebooks") for f in
              (ROOT / d).rglob("*") if f.suffix in (".py", ".ipynb", ".md")
              and f.name != "api.md" and "_build" not in f.parts]
    texts = {f: f.read_text(errors="ignore") for f in corpus}
    unused = []
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        exported = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                    and any(getattr(t, "id", None) == "__all__" for t in n.targets)]
        loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                  and isinstance(n.ctx, ast.Load)}
        loaded |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        for name in (exported[0] if exported else []):
            word = re.compile(rf"\b{re.escape(name)}\b")
            if name not in loaded and not any(word.search(t) for f, t in texts.items()
                                              if f != path):
                unused.append(f"{path.relative_to(ROOT)}: {name}")
    assert not unused, unused
