"""tensorflow-datasets sources: open a prepared TFDS builder (TensorFlow is imported only
here, and only when a TFDS dataset is used), map its keys and splits, and read it whole
(:func:`load_tfds`) or as a stream of ``uint8`` batches (:func:`tfds_batches`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from gsnn.data.dataset import ArrayDataset, DataError, ImageSize, PathLike
from gsnn.data.decode import _as_size


#: Default image size for ImageNet when none is given (center crop + resize).
IMAGENET_DEFAULT_SIZE = 224


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
    start_batch: int = 0,
) -> Any:
    """``tf.data`` pipeline of (uint8 images, labels) batches, from batch ``start_batch``
    on (its examples skipped before conversion)."""
    import tensorflow_datasets as tfds

    read_config = tfds.ReadConfig(shuffle_seed=seed) if shuffle else None
    ds = builder.as_dataset(
        split=split, as_supervised=True, shuffle_files=shuffle, read_config=read_config
    )
    if shuffle:
        ds = ds.shuffle(min(16 * batch_size, 20_000), seed=seed, reshuffle_each_iteration=False)
    if start_batch:
        ds = ds.skip(start_batch * batch_size)

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
    start_batch: int = 0,
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
        start_batch: skip this many batches (a mid-epoch resume); the rest are the
            batches an iteration from 0 yields after them.

    Returns:
        An iterator of ``(images uint8 [B, H, W, C], labels int32 [B])``. The source is
        checked when this function is called (errors raise :class:`DataError` at once).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if start_batch < 0:
        raise ValueError(f"start_batch must be >= 0, got {start_batch}")
    tf, tfds, builder = _tfds_builder(name, data_dir, download)
    image_key, _ = _tfds_keys(builder, name)
    size = _tfds_target_size(builder, name, image_key, image_size)
    real_split = _tfds_split(builder, name, split)
    mixed_seed = int(np.random.SeedSequence((seed, epoch)).generate_state(1)[0] >> 1)
    ds = _tfds_pipeline(
        tf, builder, name, real_split, size, batch_size,
        shuffle=shuffle, seed=mixed_seed, drop_remainder=drop_remainder, start_batch=start_batch,
    )

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, y in tfds.as_numpy(ds):
            yield x, y

    return generate()
