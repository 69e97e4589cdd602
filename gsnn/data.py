"""Datasets as uint8 arrays and batches, plus JAX preprocessing.

One responsibility: get labelled images into memory as ``uint8 [N, H, W, C]`` NumPy
arrays (with ``int32 [N]`` labels), iterate over them in deterministic batches, and turn
batches into normalised / augmented ``float32`` JAX arrays on device.

Sources (see :func:`load_dataset`):

* ``"demo"``: a 6000-image CIFAR-10 subset shipped inside the package as its original
  JPEG bytes (``gsnn/assets/cifar10_demo.npz``); needs no network and no files outside
  the package.
* ``"cifar10"``, ``"cifar100"``, ``"imagenet2012"`` (or any ``"tfds:<name>"``):
  tensorflow-datasets, read from a prepared ``data_dir``. Nothing is downloaded unless
  ``download=True`` is passed.
* A path to an image-folder tree ``<root>/{train,test}/<class>/*.{jpg,jpeg,png}`` or its
  ``.tar.gz`` / ``.tgz`` / ``.tar`` (such as ``../shared/data/cifar10-jpeg.tar.gz``),
  decoded once with Pillow and cached as an ``.npz`` of arrays.

Every problem with a source raises :class:`DataError` (a ``ValueError``) whose message
names the path or dataset, says what was expected and how to fix it.

The JAX functions (:func:`normalize`, :func:`random_crop_flip`) are pure, jittable and
take PRNG keys explicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import io
import logging
import os
import tarfile
import tempfile
import time
import warnings
import zlib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DataError",
    "ArrayDataset",
    "batches",
    "num_batches",
    "DATASETS",
    "load_dataset",
    "load_demo",
    "load_image_folder",
    "load_tfds",
    "tfds_batches",
    "normalize",
    "random_crop_flip",
    "stats_for",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DEMO_ASSET",
]

logger = logging.getLogger(__name__)

#: ``int`` (square) or ``(height, width)``.
ImageSize = Union[int, tuple[int, int]]
PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
#: Show a progress bar when decoding more files than this.
PROGRESS_THRESHOLD = 1000
#: Bump when the layout of the image-folder cache changes.
CACHE_VERSION = 1
#: The embedded demo set (original CIFAR-10 JPEG bytes), see ``gsnn/assets/README.md``.
DEMO_ASSET = Path(__file__).resolve().parent / "assets" / "cifar10_demo.npz"
#: Default image size for ImageNet when none is given (center crop + resize).
IMAGENET_DEFAULT_SIZE = 224

_FOLDER_LAYOUT = (
    "expected an image-folder tree <root>/train/<class>/*.jpg and "
    "<root>/test/<class>/*.jpg (.jpg, .jpeg or .png; the same class folders in both "
    "splits), or a .tar.gz/.tgz/.tar archive of such a tree"
)


class DataError(ValueError):
    """A data source is missing, malformed or not prepared.

    The message names the offending path or dataset, what was expected, and how to fix
    it.
    """


# --------------------------------------------------------------------------------------
# In-memory dataset
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ArrayDataset:
    """A labelled image dataset held in memory as NumPy arrays.

    Attributes:
        name: dataset name (``"demo"``, ``"cifar10"``, an archive's stem, ...); used by
            :func:`stats_for`.
        train_images: ``uint8 [N, H, W, C]``.
        train_labels: ``int32 [N]``, values in ``[0, num_classes)``.
        test_images: ``uint8 [M, H, W, C]``.
        test_labels: ``int32 [M]``.
        class_names: one name per class; label ``i`` is ``class_names[i]``.
        val_images: ``uint8 [V, H, W, C]`` validation images held out of the training
            data (see :meth:`subset`), or ``None``.
        val_labels: ``int32 [V]`` or ``None``.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        names = tuple(str(c) for c in self.class_names)
        object.__setattr__(self, "class_names", names)
        if not names:
            raise DataError(f"dataset '{self.name}': class_names is empty")
        if (self.val_images is None) != (self.val_labels is None):
            raise DataError(f"dataset '{self.name}': give both val_images and val_labels, or neither")
        for split in ("train", "test") + (("val",) if self.val_images is not None else ()):
            images = np.asarray(getattr(self, f"{split}_images"))
            labels = np.asarray(getattr(self, f"{split}_labels"))
            if images.dtype != np.uint8 or images.ndim != 4:
                raise DataError(
                    f"dataset '{self.name}': {split}_images must be uint8 [N, H, W, C], "
                    f"got {images.dtype} with shape {images.shape}"
                )
            if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
                raise DataError(
                    f"dataset '{self.name}': {split}_labels must be [N] with "
                    f"N={images.shape[0]}, got shape {labels.shape}"
                )
            if labels.size and not np.issubdtype(labels.dtype, np.integer):
                raise DataError(
                    f"dataset '{self.name}': {split}_labels must be integers, "
                    f"got {labels.dtype}"
                )
            labels = labels.astype(np.int32, copy=False)
            if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
                raise DataError(
                    f"dataset '{self.name}': {split}_labels must lie in "
                    f"[0, {len(names)}), got [{labels.min()}, {labels.max()}]"
                )
            object.__setattr__(self, f"{split}_images", images)
            object.__setattr__(self, f"{split}_labels", labels)
        for split in ("test", "val"):
            images = getattr(self, f"{split}_images")
            if images is not None and self.train_images.shape[1:] != images.shape[1:]:
                raise DataError(
                    f"dataset '{self.name}': train images are {self.train_images.shape[1:]} "
                    f"but {split} images are {images.shape[1:]}"
                )

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        h, w, c = self.train_images.shape[1:]
        return int(h), int(w), int(c)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.image_shape)
        val = f"val={self.num_val}, " if self.val_labels is not None else ""
        return (
            f"ArrayDataset(name={self.name!r}, train={len(self.train_labels)}, {val}"
            f"test={len(self.test_labels)}, image_shape={shape}, "
            f"num_classes={self.num_classes})"
        )

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Examples per class.

        Args:
            split: ``"train"``, ``"test"`` or ``"val"``.

        Returns:
            ``int64 [num_classes]``.
        """
        labels = self._labels(split)
        return np.bincount(labels, minlength=self.num_classes)

    def _labels(self, split: str) -> np.ndarray:
        if split not in ("train", "test", "val"):
            raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")
        if split == "val" and self.val_labels is None:
            raise ValueError(f"dataset '{self.name}' has no validation split (see ArrayDataset.subset)")
        return getattr(self, f"{split}_labels")

    def split_validation(
        self, fraction_or_count: float | int, seed: int = 0
    ) -> tuple[ArrayDataset, ArrayDataset]:
        """Hold out a class-stratified part of the TRAINING split for validation.

        The test split is never touched: use the returned ``val`` for model selection /
        evolution fitness and keep the test split for the final report.

        Per-class quotas are proportional to the class frequencies (largest-remainder
        rounding, so the total is exact); within each class the held-out examples are a
        random choice drawn with ``np.random.default_rng(seed)``. Both outputs keep the
        original order of the examples.

        Args:
            fraction_or_count: a float in ``(0, 1)`` (fraction of the training split) or
                an int in ``[1, N)`` (number of held-out examples).
            seed: selection seed.

        Returns:
            ``(train, val)``. ``train``: training arrays = the remaining training
            examples, test arrays = the original test split. ``val``: training arrays =
            the same remaining training examples, test arrays = the held-out part. Both
            keep ``name`` and ``class_names``.
        """
        labels = self.train_labels
        n = len(labels)
        if isinstance(fraction_or_count, (bool, np.bool_)):
            raise TypeError("fraction_or_count must be a float or an int, not a bool")
        if isinstance(fraction_or_count, (float, np.floating)):
            if not 0.0 < float(fraction_or_count) < 1.0:
                raise ValueError(f"validation fraction must be in (0, 1), got {fraction_or_count}")
            count = int(round(float(fraction_or_count) * n))
        elif isinstance(fraction_or_count, (int, np.integer)):
            count = int(fraction_or_count)
        else:
            raise TypeError(f"fraction_or_count must be float or int, got {fraction_or_count!r}")
        if not 0 < count < n:
            raise ValueError(
                f"dataset '{self.name}': cannot hold out {count} of {n} training "
                f"examples (need 0 < count < {n})"
            )

        counts = np.bincount(labels, minlength=self.num_classes)
        quota = counts * (count / n)
        take = np.floor(quota).astype(np.int64)
        short = count - int(take.sum())
        if short > 0:
            # Largest remainders first; ties broken by class index (stable sort).
            order = np.argsort(-(quota - take), kind="stable")
            take[order[:short]] += 1
        take = np.minimum(take, counts)

        rng = np.random.default_rng(seed)
        held_parts = []
        for c in range(self.num_classes):
            members = np.flatnonzero(labels == c)
            held_parts.append(rng.permutation(members)[: take[c]])
        held = np.sort(np.concatenate(held_parts))
        mask = np.ones(n, dtype=bool)
        mask[held] = False
        rest = np.flatnonzero(mask)

        rest_images, rest_labels = self.train_images[rest], labels[rest]
        train = dataclasses.replace(self, train_images=rest_images, train_labels=rest_labels)
        val = dataclasses.replace(
            self,
            train_images=rest_images,
            train_labels=rest_labels,
            test_images=self.train_images[held],
            test_labels=labels[held],
        )
        return train, val

    def subset(
        self,
        train_per_class: int | None = None,
        test_per_class: int | None = None,
        seed: int = 0,
        val_per_class: int | None = None,
    ) -> ArrayDataset:
        """A class-balanced random subset, with an optional validation split.

        Args:
            train_per_class: examples per class to keep from the training split
                (``None``: keep the whole split).
            test_per_class: same for the test split.
            seed: selection seed; the train, test and validation choices use independent
                streams ``default_rng((seed, 0))``, ``(seed, 1)`` and ``(seed, 2)``, so
                adding a validation split leaves the training subset unchanged.
            val_per_class: validation examples per class, drawn from the training
                examples *outside* the training subset (with ``train_per_class=None``,
                held out of the training split, which loses them); ``None``: no
                validation split.

        Returns:
            A new :class:`ArrayDataset` (examples in their original order).

        Raises:
            DataError: a class has fewer examples than requested.
        """
        parts = {}
        train_labels = self.train_labels
        for stream, split, k in ((0, "train", train_per_class), (1, "test", test_per_class)):
            images, labels = getattr(self, f"{split}_images"), self._labels(split)
            if k is None:
                parts[split] = (images, labels, np.arange(len(labels)))
                continue
            idx = self._choose(labels, k, np.random.default_rng((seed, stream)), split)
            parts[split] = (images[idx], labels[idx], idx)
        val = (self.val_images, self.val_labels)
        if val_per_class is not None:
            outside = np.ones(len(train_labels), dtype=bool)
            if train_per_class is not None:
                outside[parts["train"][2]] = False
            pool = np.flatnonzero(outside)
            chosen = pool[self._choose(train_labels[pool], val_per_class, np.random.default_rng((seed, 2)),
                                       "training (outside the training subset)")]
            val = (self.train_images[chosen], train_labels[chosen])
            if train_per_class is None:
                keep = np.ones(len(train_labels), dtype=bool)
                keep[chosen] = False
                parts["train"] = (self.train_images[keep], train_labels[keep], None)
        return dataclasses.replace(
            self,
            train_images=parts["train"][0],
            train_labels=parts["train"][1],
            test_images=parts["test"][0],
            test_labels=parts["test"][1],
            val_images=val[0],
            val_labels=val[1],
        )

    def _choose(self, labels: np.ndarray, k: int, rng: np.random.Generator, what: str) -> np.ndarray:
        """Sorted indices of ``k`` random examples per class of ``labels``."""
        if k < 0:
            raise ValueError(f"examples per class must be >= 0, got {k}")
        chosen = []
        for c, cname in enumerate(self.class_names):
            members = np.flatnonzero(labels == c)
            if len(members) < k:
                raise DataError(
                    f"dataset '{self.name}': class '{cname}' has only "
                    f"{len(members)} {what} examples, {k} requested per class"
                )
            chosen.append(rng.permutation(members)[:k])
        return np.sort(np.concatenate(chosen))

    @property
    def num_train(self) -> int:
        """Training examples."""
        return len(self.train_labels)

    def train_batches(self, batch_size: int, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled training batches (the last partial one dropped)."""
        return batches(self.train_images, self.train_labels, batch_size, seed=seed, epoch=epoch)

    @property
    def num_val(self) -> int:
        """Validation examples (0 without a validation split)."""
        return 0 if self.val_labels is None else len(self.val_labels)

    def val_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The whole validation split in order, the last batch possibly smaller."""
        self._labels("val")
        return batches(self.val_images, self.val_labels, batch_size, seed=0, epoch=0, shuffle=False,
                       drop_remainder=False)

    def test_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The whole test split in order, the last batch possibly smaller."""
        return batches(self.test_images, self.test_labels, batch_size, seed=0, epoch=0, shuffle=False,
                       drop_remainder=False)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images, in ``[0, 1]`` units.

        Useful with :func:`normalize` for sources that :func:`stats_for` does not know.

        Returns:
            ``(mean, std)``, each a tuple of ``C`` floats.
        """
        c = self.image_shape[2]
        total = np.zeros(c, np.float64)
        total_sq = np.zeros(c, np.float64)
        for start in range(0, len(self.train_images), 4096):
            chunk = self.train_images[start : start + 4096].reshape(-1, c).astype(np.float64)
            total += chunk.sum(0)
            total_sq += np.square(chunk).sum(0)
        count = max(1, self.train_images.size // c)
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        return tuple(float(m) / 255.0 for m in mean), tuple(float(s) / 255.0 for s in std)


# --------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Number of batches :func:`batches` yields per epoch for ``n`` examples."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_remainder: bool = True,
    start_batch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate over one epoch of (images, labels) batches.

    The order is a permutation drawn from ``np.random.default_rng((seed, epoch))``, so
    it depends only on ``(seed, epoch)``: a resumed run replays exactly the same batches
    (use ``start_batch`` to resume in the middle of an epoch).

    Args:
        images: ``uint8 [N, H, W, C]`` (any array indexable along axis 0).
        labels: ``int [N]``.
        batch_size: examples per batch.
        seed: non-negative run seed.
        epoch: non-negative epoch index.
        shuffle: permute the examples (otherwise keep their order).
        drop_remainder: drop the last, smaller batch; otherwise yield it.
        start_batch: skip this many batches of the epoch.

    Yields:
        ``(images [B, H, W, C] uint8, labels [B] int32)`` NumPy arrays; with
        ``drop_remainder=False`` every example appears exactly once per epoch.
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"images and labels differ in length: {n} vs {len(labels)}")
    total = num_batches(n, batch_size, drop_remainder)
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
    if not 0 <= start_batch <= total:
        raise ValueError(f"start_batch must be in [0, {total}], got {start_batch}")
    if shuffle:
        order = np.random.default_rng((int(seed), int(epoch))).permutation(n)
    else:
        order = np.arange(n)
    labels = np.asarray(labels)

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in range(start_batch, total):
            idx = order[b * batch_size : (b + 1) * batch_size]
            yield np.asarray(images[idx]), labels[idx].astype(np.int32, copy=False)

    return generate()


# --------------------------------------------------------------------------------------
# Image decoding (Pillow)
# --------------------------------------------------------------------------------------


def _as_size(image_size: ImageSize | None) -> tuple[int, int] | None:
    """Normalise ``image_size`` to ``(height, width)``."""
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)):
        size = (int(image_size), int(image_size))
    else:
        size = tuple(int(s) for s in image_size)
        if len(size) != 2:
            raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    if min(size) <= 0:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return size  # type: ignore[return-value]


def _decode_image(
    source: bytes | Path, what: str, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode one image file to ``uint8 [H, W, 3]`` RGB.

    Args:
        source: the encoded bytes, or a file path.
        what: name of the file for error messages.
        size: ``(height, width)``: center-crop to that aspect ratio and resize.

    Raises:
        DataError: the file cannot be decoded.
    """
    from PIL import Image, ImageOps

    try:
        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        with Image.open(fp) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = ImageOps.fit(img, (size[1], size[0]), method=Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(
            f"{what}: cannot decode image ({type(err).__name__}: {err}); expected a "
            "readable JPEG or PNG file. Replace or delete the file and load again."
        ) from err


def _resize_array(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Center-crop (to the target aspect ratio) and resize ``uint8 [N, H, W, C]``."""
    from PIL import Image, ImageOps

    if images.shape[1:3] == size:
        return images
    out = np.empty((len(images), size[0], size[1], images.shape[3]), np.uint8)
    for i, image in enumerate(images):
        img = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
        img = ImageOps.fit(img, (size[1], size[0]), method=Image.Resampling.BILINEAR)
        out[i] = np.asarray(img).reshape(out.shape[1:])
    return out


def _decode_all(
    files: Sequence[tuple[str, bytes | Path]],
    size: tuple[int, int] | None,
    desc: str,
    progress: bool = True,
) -> np.ndarray:
    """Decode files into one ``uint8 [N, H, W, 3]`` array (all images the same size)."""
    from tqdm import tqdm

    out: np.ndarray | None = None
    first = ""
    with tqdm(
        total=len(files), desc=desc, unit="img", disable=not progress or len(files) <= PROGRESS_THRESHOLD,
    ) as bar:
        for i, (what, source) in enumerate(files):
            image = _decode_image(source, what, size)
            if out is None:
                out = np.empty((len(files),) + image.shape, np.uint8)
                first = what
            elif image.shape != out.shape[1:]:
                raise DataError(
                    f"{what}: image is {image.shape[1]}x{image.shape[0]} (WxH) but {first} "
                    f"is {out.shape[2]}x{out.shape[1]}; all images must have the same size. "
                    "Resize them, or pass image_size to center-crop and resize them "
                    "while loading."
                )
            out[i] = image
            bar.update(1)
    if out is None:
        shape = (0,) + (size if size else (0, 0)) + (3,)
        out = np.zeros(shape, np.uint8)
    return out


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


# --------------------------------------------------------------------------------------
# Image folders and their archives
# --------------------------------------------------------------------------------------


def _default_cache_dir() -> Path:
    env = os.environ.get("GSNN_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gsnn"


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


# --------------------------------------------------------------------------------------
# tensorflow-datasets
# --------------------------------------------------------------------------------------


def _import_tfds() -> tuple[Any, Any]:
    """Import TensorFlow (hidden from GPUs, which belong to JAX) and TFDS."""
    try:
        import tensorflow as tf
    except ImportError as err:
        raise DataError(
            "reading tensorflow-datasets data needs TensorFlow: `pip install tensorflow-cpu` "
            "(or use the 'demo' set or an image-folder path instead)"
        ) from err
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):  # already initialised; harmless
        pass
    import tensorflow_datasets as tfds

    return tf, tfds


def _tfds_root(builder: Any, data_dir: PathLike | None) -> str:
    if data_dir is not None:
        return os.fspath(data_dir)
    root = getattr(builder, "_data_dir_root", None)
    return os.fspath(root) if root else os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")


def _not_prepared_message(name: str, root: str, where: str) -> str:
    msg = (
        f"TFDS dataset '{name}' is not prepared in data_dir '{root}' (looked in {where}). "
        "gsnn downloads nothing unless asked. "
    )
    if name.split(":")[0].split("/")[0] == "imagenet2012":
        msg += (
            "ImageNet cannot be downloaded automatically: get ILSVRC2012_img_train.tar "
            "and ILSVRC2012_img_val.tar from https://image-net.org/, put them in "
            f"'{root}/downloads/manual/', then run `tfds build imagenet2012 --data_dir "
            f"{root}` (or pass --manual_dir <dir with the tars>)."
        )
    else:
        msg += (
            f"Prepare it with `tfds build {name} --data_dir {root}` (on a machine with "
            "network access, then copy the folder), or pass download=True "
            "where the network is reachable."
        )
    msg += " Local alternatives: the 'demo' set, or a path to an image-folder tree or its .tar.gz."
    return msg


def _tfds_builder(
    name: str, data_dir: PathLike | None, download: bool
) -> tuple[Any, Any, Any]:
    """Return ``(tf, tfds, builder)`` for a prepared dataset, or raise DataError."""
    tf, tfds = _import_tfds()
    ddir = os.fspath(data_dir) if data_dir is not None else None
    try:
        builder = tfds.builder(name, data_dir=ddir)
    except Exception as err:  # noqa: BLE001 - DatasetNotFoundError, bad config, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        first = first.rstrip(".")
        raise DataError(
            f"TFDS dataset '{name}' cannot be opened from data_dir '{ddir or '(default)'}': "
            f"{first}. Use a tensorflow-datasets name (e.g. cifar10, cifar100, "
            "imagenet2012) or a dataset prepared in data_dir."
        ) from err
    if not builder.is_prepared():
        root = _tfds_root(builder, data_dir)
        if not download:
            raise DataError(_not_prepared_message(name, root, os.fspath(builder.data_dir)))
        try:
            builder.download_and_prepare()
        except Exception as err:  # noqa: BLE001 - network, manual files, disk, ...
            raise DataError(
                _not_prepared_message(name, root, os.fspath(builder.data_dir))
                + f" (download_and_prepare failed: {type(err).__name__}: {err})"
            ) from err
    return tf, tfds, builder


def _tfds_keys(builder: Any, name: str) -> tuple[str, str]:
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise DataError(
            f"TFDS dataset '{name}' has no (image, label) supervised keys "
            f"(got {keys!r}); gsnn needs an image-classification dataset"
        )
    return keys[0], keys[1]


def _tfds_split(builder: Any, name: str, split: str) -> str:
    """Map 'test' to 'validation' for datasets without a test split (ImageNet)."""
    splits = builder.info.splits
    base = split.split("[")[0]
    if base in splits:
        return split
    if base == "test" and "validation" in splits:
        return "validation" + split[len(base) :]
    raise DataError(
        f"TFDS dataset '{name}' has no split '{split}' (available: {sorted(splits)})"
    )


def _tfds_target_size(
    builder: Any, name: str, image_key: str, image_size: ImageSize | None
) -> tuple[int, int] | None:
    size = _as_size(image_size)
    if size is not None:
        return size
    shape = tuple(builder.info.features[image_key].shape)
    if len(shape) == 3 and None not in shape[:2]:
        return None
    if name.split(":")[0].split("/")[0].startswith("imagenet"):
        return (IMAGENET_DEFAULT_SIZE, IMAGENET_DEFAULT_SIZE)
    raise DataError(
        f"TFDS dataset '{name}' has images of variable size {shape}; pass image_size "
        "to center-crop and resize them"
    )


def _tfds_pipeline(
    tf: Any,
    builder: Any,
    name: str,
    split: str,
    size: tuple[int, int] | None,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
) -> Any:
    """``tf.data`` pipeline of (uint8 images, labels) batches."""
    import tensorflow_datasets as tfds

    read_config = tfds.ReadConfig(shuffle_seed=seed) if shuffle else None
    ds = builder.as_dataset(
        split=split, as_supervised=True, shuffle_files=shuffle, read_config=read_config
    )
    if shuffle:
        ds = ds.shuffle(min(16 * batch_size, 20_000), seed=seed, reshuffle_each_iteration=False)

    def convert(image: Any, label: Any) -> tuple[Any, Any]:
        if size is not None:
            h = tf.cast(tf.shape(image)[0], tf.float32)
            w = tf.cast(tf.shape(image)[1], tf.float32)
            th, tw = float(size[0]), float(size[1])
            crop_h = tf.cast(tf.minimum(h, w * th / tw), tf.int32)
            crop_w = tf.cast(tf.minimum(w, h * tw / th), tf.int32)
            top = (tf.shape(image)[0] - crop_h) // 2
            left = (tf.shape(image)[1] - crop_w) // 2
            image = image[top : top + crop_h, left : left + crop_w]
            image = tf.image.resize(image, size, method="bilinear", antialias=True)
            image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
        return tf.cast(image, tf.uint8), tf.cast(label, tf.int32)

    ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def load_tfds(
    name: str,
    *,
    data_dir: PathLike | None = None,
    image_size: ImageSize | None = None,
    download: bool = False,
) -> ArrayDataset:
    """Load a tensorflow-datasets image-classification dataset as arrays.

    Reads the splits ``"train"`` and ``"test"`` (``"validation"`` as test where there is
    no test split, as for ``imagenet2012``) of ``tfds.builder(name, data_dir=data_dir)``
    with ``as_supervised=True``. Class names come from the label feature.

    Nothing is downloaded unless ``download=True``; a dataset that is not prepared in
    ``data_dir`` raises :class:`DataError` explaining how to prepare it
    (``tfds build <name> --data_dir <dir>``; for ``imagenet2012`` the manual download
    directory ``<data_dir>/downloads/manual``).

    Full ImageNet does not fit in memory as arrays (1.28 M x 224 x 224 x 3 bytes ~ 190
    GB): use :func:`tfds_batches` to stream it instead.

    Args:
        name: a TFDS name, optionally with config/version (``"cifar10:3.0.2"``).
        data_dir: TFDS data directory (default: TFDS's, ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``).
        image_size: optional ``int`` or ``(height, width)``: center-crop to that aspect
            ratio and resize (bilinear, antialiased). Datasets with variable-size
            images need it; ``imagenet*`` defaults to 224.
        download: allow ``download_and_prepare`` when the data is not prepared.

    Returns:
        :class:`ArrayDataset` named ``name``; images ``uint8 [N, H, W, C]``, labels
        ``int32 [N]``, in the dataset's stored order.

    Raises:
        DataError: TensorFlow missing, unknown name, data not prepared, no such split.
    """
    tf, tfds, builder = _tfds_builder(name, data_dir, download)
    image_key, label_key = _tfds_keys(builder, name)
    size = _tfds_target_size(builder, name, image_key, image_size)
    class_names = tuple(builder.info.features[label_key].names)

    from tqdm import tqdm

    arrays = {}
    for split in ("train", "test"):
        real_split = _tfds_split(builder, name, split)
        ds = _tfds_pipeline(tf, builder, name, real_split, size, 1024)
        images, labels = [], []
        try:
            with tqdm(desc=f"reading {name} {real_split}", unit="img", leave=False) as bar:
                for x, y in tfds.as_numpy(ds):
                    images.append(x)
                    labels.append(y)
                    bar.update(len(y))
        except tf.errors.OpError as err:
            raise DataError(
                f"TFDS dataset '{name}' split '{real_split}' could not be read from "
                f"{builder.data_dir}: {err.message}"
            ) from err
        if images:
            arrays[split] = (np.concatenate(images), np.concatenate(labels))
        else:
            shape = (0,) + tuple(size or builder.info.features[image_key].shape[:2])
            shape += (builder.info.features[image_key].shape[-1],)
            arrays[split] = (np.zeros(shape, np.uint8), np.zeros((0,), np.int32))
    return ArrayDataset(
        name=name,
        train_images=arrays["train"][0],
        train_labels=arrays["train"][1],
        test_images=arrays["test"][0],
        test_labels=arrays["test"][1],
        class_names=class_names,
    )


def tfds_batches(
    name: str,
    split: str,
    batch_size: int,
    *,
    data_dir: PathLike | None = None,
    image_size: ImageSize | None = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    drop_remainder: bool = False,
    download: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream a TFDS split as uint8 NumPy batches (for data too big for memory).

    Args:
        name: TFDS name (e.g. ``"imagenet2012"``).
        split: ``"train"``, ``"test"`` (mapped to ``"validation"`` where there is no
            test split) or any TFDS split string such as ``"train[:10%]"``.
        batch_size: examples per batch.
        data_dir: TFDS data directory.
        image_size: as in :func:`load_tfds` (``imagenet*`` defaults to 224).
        shuffle: shuffle files and examples (buffer of ``16 * batch_size``, at most
            20000), seeded by ``(seed, epoch)``.
        seed: run seed.
        epoch: epoch index, mixed into the shuffle seed.
        drop_remainder: drop the last, smaller batch.
        download: allow ``download_and_prepare`` when the data is not prepared.

    Returns:
        An iterator of ``(images uint8 [B, H, W, C], labels int32 [B])``. The source is
        checked when this function is called (errors raise :class:`DataError` at once).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    tf, tfds, builder = _tfds_builder(name, data_dir, download)
    image_key, _ = _tfds_keys(builder, name)
    size = _tfds_target_size(builder, name, image_key, image_size)
    real_split = _tfds_split(builder, name, split)
    mixed_seed = int(np.random.SeedSequence((seed, epoch)).generate_state(1)[0] >> 1)
    ds = _tfds_pipeline(
        tf, builder, name, real_split, size, batch_size,
        shuffle=shuffle, seed=mixed_seed, drop_remainder=drop_remainder,
    )

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, y in tfds.as_numpy(ds):
            yield x, y

    return generate()


@dataclasses.dataclass(frozen=True)
class StreamingDataset:
    """A TFDS dataset read batch by batch, never held in memory (ImageNet).

    Offers the iteration interface of :class:`ArrayDataset` (``num_train``,
    ``train_batches``, ``test_batches``, ``num_classes``, ``image_shape``, ``name``) so
    :func:`gsnn.train.train_and_evaluate` runs on either. :meth:`materialise` draws an
    in-memory sample (for STE's inner loop).
    """

    name: str
    num_train: int
    num_test: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    data_dir: str | None = None
    image_size: tuple[int, int] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def train_batches(self, batch_size: int, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return tfds_batches(self.name, "train", batch_size, data_dir=self.data_dir, image_size=self.image_size,
                            shuffle=True, seed=seed, epoch=epoch, drop_remainder=True)

    def test_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return tfds_batches(self.name, "test", batch_size, data_dir=self.data_dir, image_size=self.image_size,
                            shuffle=False, drop_remainder=False)

    def materialise(self, n_train: int, n_test: int, seed: int = 0) -> ArrayDataset:
        """The first ``n_train`` shuffled training and ``n_test`` test examples as arrays."""
        def take(make_iter, n):
            if n <= 0:
                return np.zeros((0,) + self.image_shape, np.uint8), np.zeros((0,), np.int32)
            xs, ys, got = [], [], 0
            for x, y in make_iter():
                xs.append(x[: n - got])
                ys.append(y[: n - got])
                got += len(ys[-1])
                if got >= n:
                    break
            return np.concatenate(xs), np.concatenate(ys).astype(np.int32)

        tr = take(lambda: self.train_batches(min(n_train, 1024), seed, 0), n_train)
        te = take(lambda: self.test_batches(min(max(n_test, 1), 1024)), n_test)
        return ArrayDataset(self.name, tr[0], tr[1], te[0], te[1], self.class_names)


def open_tfds_stream(name: str, *, data_dir: PathLike | None = None, image_size: ImageSize | None = None,
                     download: bool = False) -> StreamingDataset:
    """A :class:`StreamingDataset` over a prepared TFDS dataset (checked at once)."""
    _, _, builder = _tfds_builder(name, data_dir, download)
    image_key, label_key = _tfds_keys(builder, name)
    size = _tfds_target_size(builder, name, image_key, image_size)
    feature_shape = builder.info.features[image_key].shape
    shape = (tuple(size) if size else tuple(feature_shape[:2])) + (feature_shape[-1],)
    splits = builder.info.splits
    return StreamingDataset(
        name=name, num_train=int(splits[_tfds_split(builder, name, "train")].num_examples),
        num_test=int(splits[_tfds_split(builder, name, "test")].num_examples),
        class_names=tuple(builder.info.features[label_key].names), image_shape=tuple(int(v) for v in shape),
        data_dir=os.fspath(data_dir) if data_dir else None, image_size=tuple(size) if size else None,
    )


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


# --------------------------------------------------------------------------------------
# JAX preprocessing
# --------------------------------------------------------------------------------------

#: Per-channel mean / std of the training images, in [0, 1] units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DEFAULT_MEAN = (0.5, 0.5, 0.5)
_DEFAULT_STD = (0.5, 0.5, 0.5)


def stats_for(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation statistics for a dataset name.

    Matches by prefix of the (lower-cased) name without ``tfds:`` and directories:
    ``cifar100*`` -> CIFAR-100, ``cifar10*`` and ``demo`` -> CIFAR-10 (so the archive
    ``cifar10-jpeg`` gets CIFAR-10's), ``imagenet*`` -> ImageNet; anything else gets
    ``(0.5, 0.5, 0.5)`` / ``(0.5, 0.5, 0.5)`` (see :meth:`ArrayDataset.channel_stats`).

    Returns:
        ``(mean, std)``, per-channel tuples in ``[0, 1]`` units.
    """
    key = name.lower()
    key = key[len("tfds:") :] if key.startswith("tfds:") else key
    key = key.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if key.startswith("cifar100"):
        return CIFAR100_MEAN, CIFAR100_STD
    if key.startswith("cifar10") or key == "demo":
        return CIFAR10_MEAN, CIFAR10_STD
    if key.startswith("imagenet"):
        return IMAGENET_MEAN, IMAGENET_STD
    return _DEFAULT_MEAN, _DEFAULT_STD


def normalize(
    images: jax.Array | np.ndarray,
    mean: Sequence[float] | jax.Array,
    std: Sequence[float] | jax.Array,
) -> jax.Array:
    """Scale uint8 images to ``[0, 1]`` and standardise per channel.

    Args:
        images: ``uint8 [B, H, W, C]`` (any leading shape with channels last).
        mean: ``[C]`` (or scalar) channel means in ``[0, 1]`` units.
        std: ``[C]`` (or scalar) channel standard deviations in ``[0, 1]`` units.

    Returns:
        ``float32 [B, H, W, C]``: ``(images / 255 - mean) / std``.
    """
    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    mean_arr = jnp.asarray(mean, jnp.float32)
    std_arr = jnp.asarray(std, jnp.float32)
    for label, arr in (("mean", mean_arr), ("std", std_arr)):
        if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, x.shape[-1])):
            raise ValueError(
                f"{label} must be a scalar or have {x.shape[-1]} channels, got shape {arr.shape}"
            )
    return (x - mean_arr) / std_arr


def random_crop_flip(
    key: jax.Array,
    images: jax.Array,
    padding: int = 4,
    *,
    flip: bool = True,
) -> jax.Array:
    """Standard CIFAR augmentation: random crop after zero padding, horizontal flip.

    Each image is zero-padded by ``padding`` pixels on every side and an ``H x W``
    window is cut at an independent uniform offset; then each image is mirrored left-
    right with probability 0.5. Jittable (mark ``padding`` and ``flip`` static).

    Args:
        key: PRNG key.
        images: ``[B, H, W, C]`` (float, usually after :func:`normalize`, so the padding
            is the channel mean).
        padding: pixels of zero padding per side; 0 disables cropping.
        flip: apply random horizontal flips.

    Returns:
        Same shape and dtype as ``images``.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    b, h, w, c = images.shape
    crop_key, flip_key = jax.random.split(key)
    out = images
    if padding > 0:
        padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        offsets = jax.random.randint(crop_key, (b, 2), 0, 2 * padding + 1)

        def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
            return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

        out = jax.vmap(crop)(padded, offsets)
    if flip:
        do_flip = jax.random.bernoulli(flip_key, 0.5, (b,))
        out = jnp.where(do_flip[:, None, None, None], out[:, :, ::-1, :], out)
    return out
