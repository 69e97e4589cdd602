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

One module per concern: ``dataset`` (ArrayDataset, DataError), ``pipeline`` (batching,
statistics, JAX preprocessing), ``decode`` (Pillow), ``embedded`` (the demo set),
``cache``, ``folders``, ``tfds``, ``streaming`` and ``registry`` (:func:`load_dataset`);
this package re-exports their public names.
"""

from gsnn.data.cache import KNOWN_SHA256, file_sha256, verify_sha256
from gsnn.data.dataset import ArrayDataset, DataError
from gsnn.data.embedded import DEMO_ASSET, load_demo
from gsnn.data.folders import load_image_folder
from gsnn.data.pipeline import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    batches,
    normalize,
    num_batches,
    random_crop_flip,
    stats_for,
)
from gsnn.data.registry import DATASETS, load_dataset
from gsnn.data.streaming import StreamingDataset, open_tfds_stream
from gsnn.data.tfds import load_tfds, tfds_batches

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
    # public too, but not in the __all__ of the former single module
    "KNOWN_SHA256",
    "file_sha256",
    "verify_sha256",
    "StreamingDataset",
    "open_tfds_stream",
]
