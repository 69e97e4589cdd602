"""Image-folder sources: scan a ``<root>/{train,test}/<class>/*`` tree, or a tar archive
of one read in a single streaming pass, check its layout, decode it and cache the arrays
(:func:`load_image_folder`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np

from gsnn.data.cache import _default_cache_dir, _fingerprint, _read_cache, _write_cache, verify_sha256
from gsnn.data.dataset import ArrayDataset, DataError, ImageSize, PathLike
from gsnn.data.decode import _as_size, _decode_all


logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


_FOLDER_LAYOUT = (
    "expected an image-folder tree <root>/train/<class>/*.jpg and "
    "<root>/test/<class>/*.jpg (.jpg, .jpeg or .png; the same class folders in both "
    "splits), or a .tar.gz/.tgz/.tar archive of such a tree"
)


# --------------------------------------------------------------------------------------
# Image folders and their archives
# --------------------------------------------------------------------------------------


def _archive_stem(path: Path) -> str | None:
    """The name of an archive without its suffix, or None if not an archive name."""
    lower = path.name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _build_layout(
    src: Path,
    dirs: set[tuple[str, ...]],
    files: dict[tuple[str, ...], bytes | Path],
) -> tuple[tuple[str, ...], dict[str, list[tuple[str, bytes | Path]]], dict[str, np.ndarray]]:
    """Check an image-folder layout and list its files.

    Args:
        src: the source (for messages).
        dirs: every directory, as path components relative to the root.
        files: image files (components relative to the root) -> bytes or path.

    Returns:
        ``(class_names, {split: [(display name, source)]}, {split: labels})``.
    """
    for f in files:
        for i in range(1, len(f)):
            dirs.add(f[:i])
    prefix: tuple[str, ...] = ()
    top = {d[0] for d in dirs}
    if not ({"train", "test"} & top) and len(top) == 1:
        prefix = (next(iter(top)),)  # one top-level folder wrapping the tree
    depth = len(prefix)
    where = "/".join(prefix) + "/" if prefix else ""

    classes: dict[str, list[str]] = {}
    for split in ("train", "test"):
        if prefix + (split,) not in dirs:
            raise DataError(f"{src}: no '{where}{split}/' folder; {_FOLDER_LAYOUT}")
        classes[split] = sorted(
            d[depth + 1]
            for d in dirs
            if len(d) == depth + 2 and d[: depth + 1] == prefix + (split,)
        )
        if not classes[split]:
            raise DataError(
                f"{src}: '{where}{split}/' has no class folders; {_FOLDER_LAYOUT}"
            )
    if classes["train"] != classes["test"]:
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise DataError(
            f"{src}: train/ and test/ have different class folders (only in train: "
            f"{only_train}, only in test: {only_test}); both splits need the same "
            "class folders"
        )
    class_names = tuple(classes["train"])

    per_class: dict[tuple[str, str], list[tuple[str, bytes | Path]]] = {}
    for parts, source in files.items():
        if len(parts) == depth + 3 and parts[:depth] == prefix and parts[depth] in classes:
            per_class.setdefault((parts[depth], parts[depth + 1]), []).append(
                ("/".join(parts), source)
            )
    listing: dict[str, list[tuple[str, bytes | Path]]] = {}
    labels: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        listing[split], split_labels = [], []
        for label, cname in enumerate(class_names):
            entries = sorted(per_class.get((split, cname), []), key=lambda e: e[0])
            if not entries:
                raise DataError(
                    f"{src}: class folder '{where}{split}/{cname}/' has no images "
                    f"(.jpg, .jpeg or .png); add images or remove the folder from both "
                    "train/ and test/"
                )
            listing[split].extend(
                (f"{src}:{name}" if not isinstance(s, Path) else str(s), s)
                for name, s in entries
            )
            split_labels.extend([label] * len(entries))
        labels[split] = np.asarray(split_labels, np.int32)
    return class_names, listing, labels


def _scan_dir(src: Path) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], bytes | Path]]:
    dirs: set[tuple[str, ...]] = set()
    files: dict[tuple[str, ...], bytes | Path] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        rel = Path(dirpath).relative_to(src).parts
        if rel:
            dirs.add(rel)
        for fname in filenames:
            if _is_image_name(fname):
                files[rel + (fname,)] = Path(dirpath) / fname
    return dirs, files


def _scan_tar(src: Path) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], bytes | Path]]:
    """Read every image of a tar archive into memory in one streaming pass."""
    dirs: set[tuple[str, ...]] = set()
    files: dict[tuple[str, ...], bytes | Path] = {}
    try:
        with tarfile.open(src, "r:*") as tar:
            for member in tar:
                parts = tuple(p for p in member.name.split("/") if p not in ("", "."))
                if not parts or any(_hidden(p) or p == ".." for p in parts):
                    continue
                if member.isdir():
                    dirs.add(parts)
                elif member.isfile() and _is_image_name(parts[-1]) and len(parts) >= 3:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        files[parts] = handle.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(
            f"{src}: truncated or corrupt archive ({type(err).__name__}: {err}); "
            "expected a complete .tar.gz/.tgz/.tar. Re-download or re-create it "
            "(check it with `tar tzf`)."
        ) from err
    return dirs, files


def load_image_folder(
    path: PathLike,
    *,
    cache_dir: PathLike | None = None,
    image_size: ImageSize | None = None,
    use_cache: bool = True,
    sha256: str | None = None,
) -> ArrayDataset:
    """Load an image-folder tree, or a tar archive of one, as arrays.

    Layout: ``<root>/train/<class>/*`` and ``<root>/test/<class>/*`` with ``.jpg``,
    ``.jpeg`` or ``.png`` files (hidden files and other extensions are ignored). The
    label of a class is its index in the sorted list of class folders; both splits must
    have the same class folders. An archive (``.tar.gz``, ``.tgz``, ``.tar``) may hold
    the tree at its top or inside one top-level folder; it is read directly with
    :mod:`tarfile`, not extracted. Within a class, files are taken in sorted name order.

    Images are decoded once with Pillow (as RGB) and cached as an uncompressed ``.npz``
    in ``cache_dir``, keyed by the source's absolute path, size and mtime (for a
    directory: of every file in it), so the cache is rebuilt when the source changes.

    Args:
        path: the root folder or the archive.
        cache_dir: where to cache decoded arrays (default ``$GSNN_CACHE_DIR`` or
            ``~/.cache/gsnn``).
        image_size: optional ``int`` or ``(height, width)``: center-crop every image to
            that aspect ratio and resize it (allows sources with mixed image sizes).
        use_cache: read and write the cache.
        sha256: expected hex digest of the archive (default: :data:`KNOWN_SHA256` by
            file name; nothing is checked for unknown files and for directories).

    Returns:
        :class:`ArrayDataset` named after the folder / archive (without suffix), images
        ``uint8 [N, H, W, 3]`` ordered by class, then file name.

    Raises:
        DataError: missing path, not a directory or archive, missing ``train/`` or
            ``test/``, no class folders, a class folder without images, different class
            sets in the two splits, an undecodable image (named), images of different
            sizes, a truncated or corrupt archive, an archive whose sha256 differs from
            the recorded one.
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise DataError(f"{src.absolute()}: no such file or directory; {_FOLDER_LAYOUT}")
    src = src.resolve()
    is_dir = src.is_dir()
    if sha256 and is_dir:
        raise DataError(f"{src}: a sha256 was given but the source is a directory; checksums apply to archives")
    verify_sha256(src, sha256)
    stem = _archive_stem(src)
    if not is_dir and stem is None:
        raise DataError(f"{src}: neither a directory nor a .tar.gz/.tgz/.tar archive; {_FOLDER_LAYOUT}")
    name = src.name if is_dir else str(stem)
    size = _as_size(image_size)

    cache_file = None
    if use_cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
        path_key = hashlib.sha256(str(src).encode()).hexdigest()[:10]
        stale_prefix = f"{name}-{path_key}-"
        cache_file = root / f"{stale_prefix}{_fingerprint(src, is_dir, size)[:16]}.npz"
        cached = _read_cache(cache_file, name)
        if cached is not None:
            logger.info("loaded %s from cache %s", src, cache_file)
            return cached

    start = time.perf_counter()
    dirs, files = _scan_dir(src) if is_dir else _scan_tar(src)
    class_names, listing, labels = _build_layout(src, dirs, files)
    arrays = {
        split: _decode_all(listing[split], size, f"decoding {name} {split}")
        for split in ("train", "test")
    }
    ds = ArrayDataset(
        name=name,
        train_images=arrays["train"],
        train_labels=labels["train"],
        test_images=arrays["test"],
        test_labels=labels["test"],
        class_names=class_names,
    )
    logger.info("decoded %s (%s) in %.1fs", src, ds, time.perf_counter() - start)
    if cache_file is not None:
        _write_cache(cache_file, ds, stale_prefix)
    return ds
