"""The install cell (tools/install_cell.py): present and current in every chapter and lab, a
no-op where ``gmp`` is installed, and the right clone/install/chdir where it is not.

The cell is run here as plain Python with ``subprocess.run``, ``os.chdir`` and (for the
"missing" cases) ``importlib.util.find_spec`` replaced by recorders, so nothing is cloned or
installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("install_cell", ROOT / "tools" / "install_cell.py")
ic = sys.modules["install_cell"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ic)

BOOK = ic.read_book(ROOT)
NOTEBOOKS = ic.notebooks(ROOT)
IDS = [p.relative_to(ROOT).as_posix() for p in NOTEBOOKS]


def _first_code_cell(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    return next(c for c in nb.cells if c.cell_type == "code")


def _forbid(*_args, **_kwargs):
    raise AssertionError("the install cell ran a command or changed directory")


def _run_cell(source: str) -> str:
    """Execute ``source`` as a notebook cell would; return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        exec(compile(source, "<install cell>", "exec"), {"__name__": "__main__"})
    return out.getvalue()


def test_found_notebooks():
    """Guard against a glob that finds nothing: the chapters and both labs are checked."""
    assert {"book/preface.ipynb", "book/run_it_yourself.ipynb",
            "notebooks/cab_explorer.ipynb"} <= set(IDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_install_cell_is_first_and_current(path: Path):
    cell = _first_code_cell(path)
    hint = f"{path.relative_to(ROOT)}: run `python tools/install_cell.py` to add or update it"
    assert ic.TAG in cell.metadata.get("tags", []), f"no install cell first; {hint}"
    assert cell.source == ic.expected_source(path, BOOK), f"install cell is stale; {hint}"
    assert not cell.outputs, f"{path.relative_to(ROOT)}: the install cell has saved outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_install_cell_is_a_noop_where_gmp_imports(path: Path, monkeypatch):
    """As in the build and under nbval: gmp is installed, the kernel runs in the notebook's
    folder. The cell prints nothing, runs no command (no git, no pip), stays in the folder."""
    assert importlib.util.find_spec("gmp") is not None
    cell = _first_code_cell(path)
    assert ic.TAG in cell.metadata.get("tags", []), (
        f"{path.relative_to(ROOT)}: no install cell (run `python tools/install_cell.py`)")
    monkeypatch.chdir(path.parent)
    monkeypatch.setattr(subprocess, "run", _forbid)
    monkeypatch.setattr(subprocess, "Popen", _forbid)
    monkeypatch.setattr(os, "system", _forbid)
    monkeypatch.setattr(os, "chdir", _forbid)
    assert _run_cell(cell.source) == ""


class _Recorder:
    def __init__(self, has_ipywidgets: bool = True):
        self.commands: list[list[str]] = []
        self.chdirs: list[str] = []
        self.has_ipywidgets = has_ipywidgets
        self.installed = False

    def run(self, cmd, check=False, **kwargs):
        assert check, "a failed git or pip must stop the notebook"
        self.commands.append(list(cmd))
        if cmd[:1] == ["git"]:
            Path(cmd[-1], "book").mkdir(parents=True)
        elif cmd[1:4] == ["-m", "pip", "install"]:
            self.installed = True
        return subprocess.CompletedProcess(cmd, 0)

    def find_spec(self, name, *args):
        if name == "gmp":
            return object() if self.installed else None
        if name == "ipywidgets":
            return object() if self.has_ipywidgets else None
        raise AssertionError(f"unexpected find_spec({name!r})")


def _patch(monkeypatch, rec: _Recorder) -> None:
    monkeypatch.setattr(subprocess, "run", rec.run)
    monkeypatch.setattr(os, "chdir", rec.chdirs.append)
    monkeypatch.setattr(importlib.util, "find_spec", rec.find_spec)


@pytest.mark.parametrize(("folder", "extras", "has_widgets", "requirement"), [
    ("book", [], True, ""),
    ("book", ["vision"], True, "[vision]"),
    ("notebooks", ["widgets"], True, ""),             # Colab: keep its ipywidgets 7
    ("notebooks", ["widgets"], False, "[widgets]"),   # a kernel without ipywidgets
    ("notebooks", ["vision", "widgets"], False, "[vision,widgets]"),
])
def test_install_cell_where_gmp_is_missing(folder, extras, has_widgets, requirement,
                                           tmp_path, monkeypatch):
    """Colab or a bare Jupyter: clone the configured repository at the release tag, install
    that clone with the notebook's extras into this kernel's Python, work in the clone."""
    monkeypatch.chdir(tmp_path)
    rec = _Recorder(has_ipywidgets=has_widgets)
    _patch(monkeypatch, rec)
    printed = _run_cell(ic.cell_source(BOOK, folder, extras))

    clone = f"{BOOK.name}-v{BOOK.version}"
    assert rec.commands == [
        ["git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--depth=1",
         f"--branch=v{BOOK.version}", BOOK.url, clone],
        [sys.executable, "-m", "pip", "install", "--quiet", f"./{clone}{requirement}"],
    ]
    assert rec.chdirs == [os.path.join(clone, folder)]
    assert printed == f"installed {BOOK.name} {BOOK.version} from {tmp_path / clone}\n"


def test_install_cell_after_a_kernel_restart(tmp_path, monkeypatch):
    """Colab after a restart: the package is installed and the clone is there, but the kernel
    is back in the start folder. The cell only changes into the clone again."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / BOOK.clone / "book").mkdir(parents=True)
    rec = _Recorder()
    rec.installed = True
    _patch(monkeypatch, rec)
    assert _run_cell(ic.cell_source(BOOK, "book", ["vision"])) == ""
    assert rec.commands == []
    assert rec.chdirs == [os.path.join(BOOK.clone, "book")]


def test_release_values_come_from_the_one_place():
    """URL from _config.yml's repository.url, name and version from pyproject.toml."""
    assert BOOK.url.startswith("https://github.com/")
    assert BOOK.name != "gmp", "`gmp` on PyPI is another project"
    assert BOOK.tag == f"v{BOOK.version}"


def test_documented_clone_commands_use_the_configured_repository():
    """Every `git clone URL` in the README and the chapters is the repository of _config.yml,
    so a fork changes one line (and reruns tools/install_cell.py)."""
    texts = {"README.md": (ROOT / "README.md").read_text(encoding="utf8")}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        texts[path.relative_to(ROOT).as_posix()] = "\n".join(c.source for c in nb.cells)
    clones = pins = 0
    for name, text in texts.items():
        for url in re.findall(r"git clone\s+(?:--\S+\s+)*(https://\S+?)(?:\.git)?[\s`\"]", text):
            clones += 1
            assert url == BOOK.url, f"{name}: `git clone {url}`, but _config.yml says {BOOK.url}"
        for url, tag in re.findall(r"git\+(https://[^@\s\"]+?)(?:\.git)?@([\w.-]+)", text):
            pins += 1
            assert (url, tag) == (BOOK.url, BOOK.tag), (
                f"{name}: pip install from {url}@{tag}, expected {BOOK.url}@{BOOK.tag}")
    assert clones and pins, "no `git clone` or `git+URL@tag` found in the README or the chapters"


def test_binder_installs_what_every_notebook_needs():
    """binder/requirements.txt installs this checkout with every extra a notebook imports."""
    lines = [ln.split("#", 1)[0].strip()
             for ln in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    local = [ln for ln in lines if ln.startswith(".")]
    assert len(local) == 1, f"expected one local requirement (.[extras]), got {local}"
    m = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", local[0])
    assert m, local[0]
    binder_extras = set(filter(None, (m.group(1) or "").split(",")))
    needed = {e for p in NOTEBOOKS for e in ic.extras_for(nbformat.read(p, as_version=4))}
    assert needed <= binder_extras, f"binder/requirements.txt lacks extras {needed - binder_extras}"
    defined = set(ic.tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                  ["optional-dependencies"])
    assert binder_extras <= defined, f"unknown extras {binder_extras - defined}"
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.(1[0-9])", runtime), runtime


# --- the tool itself ------------------------------------------------------------------------

def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = 4
    nb.cells = list(cells)
    return nb


def test_apply_inserts_before_the_first_code_cell_and_is_idempotent():
    md, code = nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("import gmp")
    for c in (md, code):
        c.pop("id", None)
    nb = _notebook(md, code)
    assert ic.apply(nb, "SRC")
    assert [c.source for c in nb.cells] == ["# T", "SRC", "import gmp"]
    assert nb.cells[1].metadata["tags"] == ["gmp-install", "remove-cell"]
    nbformat.validate(nb)
    assert not ic.apply(nb, "SRC")                 # second run: nothing to do
    assert ic.apply(nb, "NEW")                     # a changed value updates in place
    assert [c.source for c in nb.cells] == ["# T", "NEW", "import gmp"]


def test_apply_keeps_tags_of_a_current_cell_and_moves_a_misplaced_one():
    shown = nbformat.v4.new_code_cell("old", metadata={"tags": ["gmp-install"]})
    nb = _notebook(shown, nbformat.v4.new_code_cell("x = 1"))
    assert ic.apply(nb, "SRC") and nb.cells[0].metadata["tags"] == ["gmp-install"]

    late = nbformat.v4.new_code_cell("SRC", metadata={"tags": ["gmp-install", "remove-cell"]})
    nb = _notebook(nbformat.v4.new_code_cell("x = 1"), late)
    assert ic.apply(nb, "SRC")
    assert [c.source for c in nb.cells] == ["SRC", "x = 1"]


def test_apply_leaves_a_notebook_without_code_alone():
    nb = _notebook(nbformat.v4.new_markdown_cell("text"))
    assert not ic.apply(nb, "SRC") and len(nb.cells) == 1


def test_extras_follow_the_imports():
    def nb(src):
        return _notebook(nbformat.v4.new_code_cell(src))
    assert ic.extras_for(nb("import torch\nfrom gmp import cab")) == []
    assert ic.extras_for(nb("from gmp.train import TrainConfig")) == ["vision"]
    assert ic.extras_for(nb("import ipywidgets as W\nfrom gmp.models import x")) == [
        "vision", "widgets"]


def test_read_book_rejects_a_non_github_repository(tmp_path):
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/x\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "a"\nversion = "1"\n')
    with pytest.raises(ValueError, match=r"repository\.url must be a GitHub repository"):
        ic.read_book(tmp_path)
