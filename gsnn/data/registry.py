"""Dataset names to loaders: the :data:`DATASETS` registry and :func:`load_dataset`, which
resolves a registered name, ``"tfds:<name>"`` or a path to the loader that reads it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gsnn.data.dataset import ArrayDataset, DataError, ImageSize, PathLike
from gsnn.data.decode import _as_size, _resize_array
from gsnn.data.embedded import load_demo
from gsnn.data.folders import _FOLDER_LAYOUT, _archive_stem, load_image_folder
from gsnn.data.tfds import load_tfds


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

#: Registered dataset names -> loader. Loaders take keyword arguments among
#: ``cache_dir``, ``data_dir``, ``image_size``, ``download`` (those they accept are
#: passed by :func:`load_dataset`) and return an :class:`ArrayDataset`.
DATASETS: dict[str, Callable[..., ArrayDataset]] = {
    "demo": load_demo,
    "cifar10": functools.partial(load_tfds, "cifar10"),
    "cifar100": functools.partial(load_tfds, "cifar100"),
    "imagenet2012": functools.partial(load_tfds, "imagenet2012"),
}


def _call_loader(loader: Callable[..., ArrayDataset], **options: Any) -> ArrayDataset:
    """Call a registry loader with the options its signature accepts."""
    params = inspect.signature(loader).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = {k: v for k, v in options.items() if takes_all or k in params}
    ds = loader(**accepted)
    size = _as_size(options.get("image_size"))
    if size is not None and "image_size" not in accepted and ds.image_shape[:2] != size:
        ds = dataclasses.replace(
            ds,
            train_images=_resize_array(ds.train_images, size),
            test_images=_resize_array(ds.test_images, size),
        )
    return ds


def load_dataset(
    source: PathLike,
    *,
    cache_dir: PathLike | None = None,
    data_dir: PathLike | None = None,
    image_size: ImageSize | None = None,
    download: bool = False,
    sha256: str | None = None,
) -> ArrayDataset:
    """Load a dataset by registry name, ``"tfds:<name>"`` or path.

    Resolution order: ``"tfds:<name>"`` -> :func:`load_tfds`; a key of
    :data:`DATASETS` (``demo``, ``cifar10``, ``cifar100``, ``imagenet2012``); an
    existing path, or anything that looks like one (contains a ``/`` or ends in
    ``.tar.gz``/``.tgz``/``.tar``) -> :func:`load_image_folder` (write ``./demo`` for a
    folder that shadows a registered name).

    Args:
        source: name or path.
        cache_dir: cache for decoded image folders.
        data_dir: TFDS data directory.
        image_size: optional ``int`` or ``(height, width)`` to center-crop and resize to.
        download: let TFDS download and prepare missing data.
        sha256: expected digest of an archive path (see :func:`load_image_folder`).

    Returns:
        :class:`ArrayDataset`.

    Raises:
        DataError: unknown name that is not an existing path (the message lists the
            valid names), or any error of the chosen loader.
    """
    text = os.fspath(source)
    if text.startswith("tfds:"):
        return load_tfds(text[len("tfds:") :], data_dir=data_dir, image_size=image_size,
                         download=download)
    if text in DATASETS:
        return _call_loader(
            DATASETS[text], cache_dir=cache_dir, data_dir=data_dir,
            image_size=image_size, download=download,
        )
    path = Path(text).expanduser()
    looks_like_path = "/" in text or os.sep in text or _archive_stem(path) is not None
    if path.exists() or looks_like_path:
        return load_image_folder(path, cache_dir=cache_dir, image_size=image_size, sha256=sha256)
    if sha256:
        raise DataError(f"data.sha256 applies to archive paths, not to {text!r}")
    raise DataError(
        f"unknown dataset '{text}': not a registered name ({', '.join(sorted(DATASETS))}), "
        f"not 'tfds:<name>', and no file or directory exists at {path.absolute()}. "
        f"Pass one of those names, tfds:<any tensorflow-datasets name>, or a path; "
        f"{_FOLDER_LAYOUT}"
    )
