"""Write a copy of the book's ``_config.yml`` with notebook execution turned off.

Usage: ``python tests/browser/noexec_config.py _config.yml _build/noexec_config.yml``

``make test-browser`` builds the HTML it tests from the notebooks' committed outputs, because
``make test`` already re-executes every chapter under nbval, which compares against exactly those
outputs; executing the chapters a second time would only double the test time. ``make book``
keeps forced execution.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src, dst = map(Path, argv)
    config = yaml.safe_load(src.read_text(encoding="utf8"))
    if not isinstance(config, dict):
        raise SystemExit(f"{src}: expected a YAML mapping at the top level")
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    dst.parent.mkdir(parents=True, exist_ok=True)
    # safe_dump quotes the string 'off' (YAML 1.1 would otherwise read it as false).
    dst.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
