"""Data loaders. Small public files are fetched by :mod:`gmp.data.store` (pinned URL,
SHA-256, cache, ``GMP_DATA_DIR``); ImageNet-scale data is read from a folder you provide."""

from .store import DataCorruptError, DataNotFoundError, RemoteFile, cache_dir, fetch

__all__ = ["DataCorruptError", "DataNotFoundError", "RemoteFile", "cache_dir", "fetch"]
