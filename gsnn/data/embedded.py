"""The embedded demo set: the 6000-image CIFAR-10 subset shipped inside the package as
its original JPEG bytes (``gsnn/assets/cifar10_demo.npz``), decoded once per process and
served as an :class:`~gsnn.data.dataset.ArrayDataset` without network or outside files.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from gsnn.data.dataset import ArrayDataset, DataError, ImageSize
from gsnn.data.decode import _as_size, _decode_all, _resize_array


#: The embedded demo set (original CIFAR-10 JPEG bytes), see ``gsnn/assets/README.md``.
DEMO_ASSET = Path(__file__).resolve().parent.parent / "assets" / "cifar10_demo.npz"


# --------------------------------------------------------------------------------------
# Embedded demo set
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _demo_arrays() -> dict[str, Any]:
    if not DEMO_ASSET.is_file():
        raise DataError(
            f"{DEMO_ASSET}: the embedded demo set is missing; reinstall gsnn, or "
            "regenerate it with `python scripts/make_demo_set.py` (see gsnn/assets/README.md)"
        )
    try:
        with np.load(DEMO_ASSET, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
        out: dict[str, Any] = {"class_names": tuple(str(c) for c in raw["class_names"])}
        for split in ("train", "test"):
            blob, offsets = raw[f"{split}_jpeg"].tobytes(), raw[f"{split}_offsets"]
            names = raw[f"{split}_files"]
            files = [
                (f"{DEMO_ASSET.name}:{split}/{names[i]}", blob[offsets[i] : offsets[i + 1]])
                for i in range(len(offsets) - 1)
            ]
            out[f"{split}_images"] = _decode_all(files, None, "decoding demo", progress=False)
            out[f"{split}_labels"] = raw[f"{split}_labels"].astype(np.int32)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{DEMO_ASSET}: the embedded demo set is unreadable ({err}); reinstall gsnn "
            "or regenerate it with `python scripts/make_demo_set.py`"
        ) from err
    return out


def load_demo(*, image_size: ImageSize | None = None) -> ArrayDataset:
    """The embedded demo set: 5000 train / 1000 test CIFAR-10 images (32x32 RGB).

    A fixed, class-balanced subset of CIFAR-10 (the first 500 training and first 100
    test files per class of the JPEG release, in sorted file-name order), stored in the
    package as the original JPEG bytes and decoded here with Pillow. Needs no network
    and nothing outside the package. See ``gsnn/assets/README.md``.

    Args:
        image_size: optional ``int`` or ``(height, width)`` to resize to.

    Returns:
        :class:`ArrayDataset` named ``"demo"`` with CIFAR-10's class names; images
        ``uint8 [N, 32, 32, 3]`` ordered by class, then file name.
    """
    arrays = _demo_arrays()
    size = _as_size(image_size)
    train, test = arrays["train_images"], arrays["test_images"]
    train = _resize_array(train, size) if size else train.copy()
    test = _resize_array(test, size) if size else test.copy()
    return ArrayDataset(
        name="demo",
        train_images=train,
        train_labels=arrays["train_labels"].copy(),
        test_images=test,
        test_labels=arrays["test_labels"].copy(),
        class_names=arrays["class_names"],
    )
