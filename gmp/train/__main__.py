"""``python -m gmp.train`` (what ``torchrun ... -m gmp.train`` runs)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
