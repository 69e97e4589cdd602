"""From arrays to model inputs: deterministic epoch batching of NumPy arrays, the
per-dataset normalisation statistics, and the pure, jittable JAX preprocessing
(:func:`normalize`, :func:`random_crop_flip`, which take PRNG keys explicitly).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np


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
