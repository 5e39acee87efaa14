"""Insert or update the install cell: the first code cell of every chapter and lab.

Usage::

    python tools/install_cell.py                 # book/*.ipynb and notebooks/*.ipynb
    python tools/install_cell.py book/05_levy.ipynb ...
    python tools/install_cell.py --check         # exit 1 if a notebook is missing or stale

A notebook opened on its own (Colab, or a Jupyter without the package) cannot import ``gmp``.
The install cell fixes that, and does nothing where ``gmp`` is installed (``make lab``,
``make book``, nbval, Binder). Where it is missing, the cell

1. clones the book's repository at the release tag ``v<version>`` into ``gmp-book-v<version>/``
   next to the notebook (a clone rather than ``pip install git+URL``: chapters such as the UCI
   chapter read committed files, ``results/*.json``, from the repository);
2. installs the package from that clone, ``pip install "./gmp-book-v<version>[extras]"``, with
   the extras the notebook imports (``vision`` for torchvision, ``widgets`` for ipywidgets when
   the kernel has none: Colab ships ipywidgets 7 and cannot display 8);
3. changes into the clone's copy of the notebook's folder, so relative paths (``../results``)
   resolve as in the book. After a restart of the kernel (``gmp`` installed, the clone present)
   it only changes directory again.

Where the values come from -- each is written in exactly one place:

- the repository address: ``repository.url`` in ``_config.yml`` (it also drives the book's
  repository, Binder and Colab buttons). **A fork changes that line and reruns this tool.**
- the distribution name and version: ``[project]`` in ``pyproject.toml``. The release tag
  ``v<version>`` must exist in the repository for the cell to work outside the book.

The cell is tagged ``gmp-install`` (how this tool finds it again) and, when first inserted,
``remove-cell`` (Jupyter Book leaves it out of the HTML page; it still runs in the build, where
it is a no-op). Running the tool again changes nothing unless a value above changed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import yaml

ROOT = Path(__file__).resolve().parents[1]
TAG = "gmp-install"
INSERT_TAGS = [TAG, "remove-cell"]
NOTEBOOK_GLOBS = ("book/*.ipynb", "notebooks/*.ipynb")

# Extras of pyproject.toml that a notebook needs, by what its code cells import. `widgets` is
# installed only when the kernel lacks ipywidgets (see the module docstring).
EXTRA_TRIGGERS = {
    "vision": re.compile(r"^\s*(?:from|import)\s+(?:torchvision|PIL|gmp\.train|gmp\.data\.imagenet"
                         r"|gmp\.models)\b", re.MULTILINE),
    "widgets": re.compile(r"^\s*(?:from|import)\s+ipywidgets\b", re.MULTILINE),
}
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Book:
    """What the install cell needs to know about the book: its repository and its release."""

    url: str        # https://github.com/OWNER/REPO, from _config.yml
    name: str       # distribution name, from pyproject.toml
    version: str    # from pyproject.toml

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def clone(self) -> str:
        """Folder the cell clones into, next to the notebook."""
        return f"{self.name}-{self.tag}"


def read_book(root: Path = ROOT) -> Book:
    """Read the repository URL from ``_config.yml`` and name/version from ``pyproject.toml``."""
    config_path = root / "_config.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf8"))
    url = (config.get("repository") or {}).get("url") if isinstance(config, dict) else None
    if not isinstance(url, str) or not _GITHUB.match(url.strip()):
        raise ValueError(
            f"{config_path}: repository.url must be a GitHub repository address "
            f"https://github.com/OWNER/REPO (Colab opens notebooks only from GitHub), got {url!r}")
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf8")).get("project", {})
    name, version = project.get("name"), project.get("version")
    if not name or not version:
        raise ValueError(f"{root / 'pyproject.toml'}: [project] needs a name and a version")
    return Book(url=url.strip().rstrip("/").removesuffix(".git"), name=name, version=version)


def extras_for(nb: nbformat.NotebookNode) -> list[str]:
    """Extras of the package the notebook's code imports, sorted (the install cell excluded)."""
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and not _is_install(c))
    return sorted(extra for extra, pattern in EXTRA_TRIGGERS.items() if pattern.search(code))


def cell_source(book: Book, folder: str, extras: Sequence[str]) -> str:
    """The install cell for a notebook in ``folder`` (``book`` or ``notebooks``) that needs
    ``extras``."""
    fixed = [e for e in extras if e != "widgets"]
    lines = [
        "# Opened outside the book's environment (Colab, a Jupyter without `gmp`)? Then this cell",
        f"# clones the book at its release {book.tag}, installs its package and works inside the",
        "# clone; where `gmp` is installed it does nothing. Written by tools/install_cell.py.",
        "import importlib.util",
        "import os",
        "",
        f'BOOK_CLONE = "{book.clone}"',
        'if importlib.util.find_spec("gmp") is None or os.path.isdir(BOOK_CLONE):',
        "    import subprocess",
        "    import sys",
        "",
        "    if not os.path.isdir(BOOK_CLONE):",
        '        subprocess.run(["git", "-c", "advice.detachedHead=false", "clone", "--quiet",',
        f'                        "--depth=1", "--branch={book.tag}",',
        f'                        "{book.url}", BOOK_CLONE], check=True)',
        '    if importlib.util.find_spec("gmp") is None:',
    ]
    if "widgets" in extras:
        lines += [
            f"        extras = {fixed!r}",
            "        # ipywidgets only if the kernel has none: Colab's 7.x cannot display 8.x",
            '        if importlib.util.find_spec("ipywidgets") is None:',
            '            extras.append("widgets")',
            '        req = f"./{BOOK_CLONE}" + (f"[{\',\'.join(extras)}]" if extras else "")',
        ]
    elif fixed:
        lines.append(f'        req = f"./{{BOOK_CLONE}}[{",".join(fixed)}]"')
    else:
        lines.append('        req = f"./{BOOK_CLONE}"')
    lines += [
        '        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", req],'
        ' check=True)',
        "        importlib.invalidate_caches()",
        f'        print("installed {book.name} {book.version} from", os.path.abspath(BOOK_CLONE))',
        f'    os.chdir(os.path.join(BOOK_CLONE, "{folder}"))',
    ]
    return "\n".join(lines)


def _is_install(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and TAG in cell.get("metadata", {}).get("tags", [])


def expected_source(path: Path, book: Book, nb: nbformat.NotebookNode | None = None) -> str:
    nb = nb if nb is not None else nbformat.read(path, as_version=4)
    return cell_source(book, path.resolve().parent.name, extras_for(nb))


def apply(nb: nbformat.NotebookNode, source: str) -> bool:
    """Make the notebook's first code cell the install cell with ``source``; True if changed.

    An install cell that already is the first code cell is updated in place (its position and
    tags are kept, so a page may show it); any other is removed and a new one is inserted
    right before the first code cell. A notebook without code cells is left alone.
    """
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not code:
        return False
    first = nb.cells[code[0]]
    if _is_install(first) and not any(_is_install(nb.cells[i]) for i in code[1:]):
        if first.source == source and not first.outputs:
            return False
        first.source, first.outputs = source, []
        return True
    nb.cells = [c for c in nb.cells if not _is_install(c)]
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(INSERT_TAGS)})
    cell.pop("id", None)  # nbformat 4.4 notebooks (the book's) carry no cell ids
    if nb.nbformat_minor >= 5:
        cell.id = nbformat.corpus.words.generate_corpus_id()
    nb.cells.insert(at, cell)
    return True


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for pattern in NOTEBOOK_GLOBS for p in root.glob(pattern))


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help="notebooks (default: book/*.ipynb notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook lacks the current cell")
    args = parser.parse_args(list(argv) if argv is not None else None)
    book = read_book(ROOT)
    stale = []
    for path in args.paths or notebooks(ROOT):
        if path.suffix != ".ipynb" or not path.is_file():
            parser.error(f"{path}: not a notebook file")
        nb = nbformat.read(path, as_version=4)
        if apply(nb, expected_source(path, book, nb)):
            stale.append(path)
            if not args.check:
                nbformat.write(nb, path)
    verb = "needs the install cell (run python tools/install_cell.py)" if args.check else "updated"
    for path in stale:
        print(f"{path}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
