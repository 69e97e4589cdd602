"""The in-memory dataset: :class:`ArrayDataset` (labelled ``uint8`` image arrays, with
subsets, validation splits and batch iterators), the :class:`DataError` every data
source raises, and the type aliases the loaders share.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from typing import Union

import numpy as np

from gsnn.data.pipeline import batches


#: ``int`` (square) or ``(height, width)``.
ImageSize = Union[int, tuple[int, int]]
PathLike = Union[str, os.PathLike]


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
        indices: where this dataset's examples sit in the source it was cut from by
            :meth:`subset`: ``{"train": int64 [N], "val": int64 [V], "test": int64 [M]}``,
            positions in the source's training split (``train`` and ``val``) and test
            split; ``None``: the source's splits, whole. :meth:`fingerprint` hashes them.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    indices: dict | None = None

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
        base = self.source_indices()
        kept = self._compose_indices({"train": rest, "test": np.arange(len(self.test_labels))})
        train = dataclasses.replace(self, train_images=rest_images, train_labels=rest_labels, indices=kept)
        val = dataclasses.replace(
            self,
            train_images=rest_images,
            train_labels=rest_labels,
            test_images=self.train_images[held],
            test_labels=labels[held],
            # its test arrays are held out of the source's training split: a validation split
            indices={"train": base["train"][rest], "val": base["train"][held]},
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
                parts["train"] = (self.train_images[keep], train_labels[keep], np.flatnonzero(keep))
        else:
            chosen = None
        own = {"train": parts["train"][2], "test": parts["test"][2]}
        if chosen is not None:
            own["val"] = chosen
        return dataclasses.replace(
            self,
            train_images=parts["train"][0],
            train_labels=parts["train"][1],
            test_images=parts["test"][0],
            test_labels=parts["test"][1],
            val_images=val[0],
            val_labels=val[1],
            indices=self._compose_indices(own),
        )

    def _compose_indices(self, own: dict) -> dict:
        """This dataset's source positions of the examples that ``own`` picks (positions
        in this dataset's splits; ``val`` indexes its training split)."""
        base = self.source_indices()
        out = {split: base[split][np.asarray(idx, np.int64)] for split, idx in own.items() if split != "val"}
        out["val"] = base["train"][np.asarray(own["val"], np.int64)] if "val" in own else base.get("val")
        return {k: v for k, v in out.items() if v is not None}

    def source_indices(self) -> dict:
        """:attr:`indices`, or the whole splits' positions when this dataset is not a subset."""
        if self.indices is not None:
            return self.indices
        out = {"train": np.arange(self.num_train, dtype=np.int64),
               "test": np.arange(len(self.test_labels), dtype=np.int64)}
        return out

    def fingerprint(self) -> str:
        """sha256 (hex) of the dataset's name and the source positions of its training
        and validation examples (:attr:`indices`): two runs with equal fingerprints train
        and select on the same images, whatever machine computed their numbers. Without
        a validation split only the training positions count."""
        idx = self.source_indices()
        h = hashlib.sha256(f"{self.name}|train={self.num_train}|val={self.num_val}|".encode())
        for split in ("train", "val"):
            if split in idx:
                h.update(split.encode())
                h.update(np.ascontiguousarray(idx[split], dtype="<i8").tobytes())
        return h.hexdigest()

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

    def train_batches(self, batch_size: int, seed: int, epoch: int,
                      start_batch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled training batches (the last partial one dropped), from
        batch ``start_batch`` on (a mid-epoch resume reads only the batches it runs)."""
        return batches(self.train_images, self.train_labels, batch_size, seed=seed, epoch=epoch,
                       start_batch=start_batch)

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
