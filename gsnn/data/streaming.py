"""Datasets too big for memory: :class:`StreamingDataset` reads a TFDS dataset batch by
batch behind :class:`~gsnn.data.dataset.ArrayDataset`'s iteration interface, and
:func:`open_tfds_stream` opens one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import numpy as np

from gsnn.data.dataset import ArrayDataset, ImageSize, PathLike
from gsnn.data.tfds import _tfds_builder, _tfds_keys, _tfds_split, _tfds_target_size, tfds_batches


@dataclasses.dataclass(frozen=True)
class StreamingDataset:
    """A TFDS dataset read batch by batch, never held in memory (ImageNet).

    Offers the iteration interface of :class:`ArrayDataset` (``num_train``,
    ``train_batches``, ``test_batches``, ``num_classes``, ``image_shape``, ``name``) so
    :func:`gsnn.training.train_and_evaluate` runs on either. :meth:`materialise` draws an
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

    def train_batches(self, batch_size: int, seed: int, epoch: int,
                      start_batch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled training batches (the last partial one dropped), from
        batch ``start_batch`` on: the skipped examples are dropped inside ``tf.data``,
        before they are resized, batched or copied to NumPy."""
        return tfds_batches(self.name, "train", batch_size, data_dir=self.data_dir, image_size=self.image_size,
                            shuffle=True, seed=seed, epoch=epoch, drop_remainder=True, start_batch=start_batch)

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
