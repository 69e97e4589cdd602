"""The data section: where the images come from and how they are prepared."""
from __future__ import annotations

import dataclasses
import pathlib


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared.

    Attributes:
      source: ``"demo"`` (embedded), a tfds name (``cifar10``, ``cifar100``,
        ``imagenet2012``; ``tfds:<name>`` forces tfds), or a path to an image-folder
        tree or its ``.tar.gz``.
      cache_dir: decoded-array cache (default ``$GSNN_CACHE_DIR`` or ``~/.cache/gsnn``).
      data_dir: tfds data directory.
      train_per_class: class-balanced training subset (``0`` = all).
      test_per_class: class-balanced test subset (``0`` = all).
      val_per_class: class-balanced validation split drawn from the training images
        *outside* the training subset (``0`` = none). With ``train_per_class=0`` it is
        held out of the training split. With a validation split, every epoch is
        evaluated on it and the test split is read once, at the end (DESIGN 1.6).
      augment: random crop (padding 4) and horizontal flip during training.
      crop_padding: zero padding of the random crop.
      sha256: expected digest of an archive ``source`` (archives named in
        ``gsnn.data.KNOWN_SHA256`` are checked without it).
      stream: read a TFDS ``source`` batch by batch instead of loading it into memory
        (ImageNet); no class-balanced subsets.
    """

    source: str = "demo"
    cache_dir: str = ""
    data_dir: str = ""
    train_per_class: int = 0
    test_per_class: int = 0
    val_per_class: int = 0
    augment: bool = True
    crop_padding: int = 4
    sha256: str = ""
    stream: bool = False


    def validate(self) -> "DataConfig":
        if self.stream and (self.train_per_class or self.test_per_class or self.val_per_class):
            raise ValueError("data.stream reads the whole TFDS splits; set data.train_per_class=0, "
                             "data.test_per_class=0 and data.val_per_class=0 (or data.stream=false for a "
                             "subset in memory)")
        for name in ("train_per_class", "test_per_class", "val_per_class"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        if self.stream:
            src = self.source.removeprefix("tfds:")
            if src in ("demo", "") or src.endswith((".tar.gz", ".tgz", ".tar")) or pathlib.Path(src).exists():
                raise ValueError(f"data.stream needs a TFDS dataset name as data.source, got {self.source!r}")
        return self
