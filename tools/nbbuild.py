"""Write a notebook from a compact Python description and execute it in place.

Usage from a chapter script::

    from tools.nbbuild import md, code, write
    write("book/01_cab.ipynb", [md("# Title"), code("import gmp")])

``python tools/nbbuild.py PATH...`` re-executes existing notebooks in place (outputs saved),
which is how committed outputs are refreshed for nbval.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(src: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(src.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def execute(path: str | Path, timeout: int = 900) -> None:
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:  # keep diffs small: no execution timestamps
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def write(path: str | Path, cells: list, run: bool = True) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells
    nbformat.write(nb, Path(path))
    if run:
        execute(path)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print("executing", p, flush=True)
        execute(p)
