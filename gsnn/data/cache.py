"""The on-disk cache of decoded image folders and archive integrity: the cache location,
the source fingerprint that keys it, atomic ``.npz`` reads and writes, and the sha256
checks of archives (:data:`KNOWN_SHA256`, :func:`verify_sha256`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from gsnn.data.dataset import ArrayDataset, DataError, PathLike


#: Bump when the layout of the image-folder cache changes.
CACHE_VERSION = 1


def _default_cache_dir() -> Path:
    env = os.environ.get("GSNN_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gsnn"


def _fingerprint(src: Path, is_dir: bool, size: tuple[int, int] | None) -> str:
    """Content key for the cache: absolute path + size + mtime of the source.

    For a directory the sizes and mtimes of every file below it are included, so adding,
    removing or rewriting any image invalidates the cache.
    """
    digest = hashlib.sha256()
    digest.update(f"v{CACHE_VERSION}|{src}|{size}".encode())
    if is_dir:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for fname in sorted(filenames):
                st = os.stat(os.path.join(dirpath, fname))
                rel = os.path.relpath(os.path.join(dirpath, fname), src)
                digest.update(f"|{rel}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        st = src.stat()
        digest.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def _read_cache(path: Path, name: str) -> ArrayDataset | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["cache_version"]) != CACHE_VERSION:
                return None
            return ArrayDataset(
                name=name,
                train_images=z["train_images"],
                train_labels=z["train_labels"],
                test_images=z["test_images"],
                test_labels=z["test_labels"],
                class_names=tuple(str(c) for c in z["class_names"]),
            )
    except Exception as err:  # noqa: BLE001 - any broken cache is rebuilt
        warnings.warn(f"ignoring unreadable cache {path} ({err}); rebuilding it", stacklevel=3)
        return None


def _write_cache(path: Path, ds: ArrayDataset, stale_prefix: str) -> None:
    """Write the cache atomically (temp file + os.replace); drop stale versions."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                train_images=ds.train_images,
                train_labels=ds.train_labels,
                test_images=ds.test_images,
                test_labels=ds.test_labels,
                class_names=np.asarray(ds.class_names, dtype=str),
                cache_version=np.asarray(CACHE_VERSION),
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
        for old in path.parent.glob(stale_prefix + "*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as err:
        warnings.warn(f"could not write cache {path} ({err}); continuing without it", stacklevel=3)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


#: sha256 of archives whose content is known, by file name: checked on every load.
KNOWN_SHA256 = {
    "cifar10-jpeg.tar.gz": "6a13eb520787687ab57fed4a5c477b8d7918dc3687e378a00047cfc6dc83eddf",
}


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: PathLike, expected: str | None = None) -> str | None:
    """Checks an archive against ``expected`` or, when that is ``None``, against
    :data:`KNOWN_SHA256` by file name. Returns the digest checked (``None``: nothing
    known). Raises :class:`DataError` naming both digests on a mismatch."""
    path = Path(path)
    expected = (expected or KNOWN_SHA256.get(path.name) or "").lower() or None
    if expected is None or path.is_dir():
        return None
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(f"{path}: sha256 {actual} does not match the recorded {expected}; the archive is "
                        f"corrupt, truncated or a different file. Fetch it again (or pass the right "
                        f"data.sha256 for a file you changed on purpose)")
    return actual
