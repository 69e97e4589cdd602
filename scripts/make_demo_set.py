#!/usr/bin/env python
"""Build the embedded demo set ``gsnn/assets/cifar10_demo.npz``.

The demo set is a fixed, class-balanced subset of CIFAR-10 (Krizhevsky, 2009) taken
from the JPEG re-encoding at ``../shared/data/cifar10-jpeg.tar.gz``. It stores the
ORIGINAL JPEG BYTES of the chosen files (no re-encoding, no decoded pixels), so
``gsnn.data.load_demo()`` decodes exactly the same pixels as loading the full archive.

Selection rule (deterministic): for every class, in sorted class-folder order, the
first 500 files of ``train/<class>/`` and the first 100 files of ``test/<class>/`` in
sorted file-name order (``0000.jpg``, ``0001.jpg``, ...). That gives 5000 training and
1000 test images, ordered by class, then file name.

Layout of the ``.npz`` (readable with ``np.load(path, allow_pickle=False)``)::

    train_jpeg     uint8 [total_bytes]   concatenated JPEG files
    train_offsets  int64 [N + 1]         file i is train_jpeg[offsets[i]:offsets[i+1]]
    train_labels   int32 [N]
    train_files    str   [N]             "<class>/<file>" inside train/, provenance
    test_jpeg, test_offsets, test_labels, test_files   (same, for test/)
    class_names    str   [10]
    source_sha256  str   []              sha256 of the source archive

The zip container is written with fixed timestamps, so the asset is byte-for-byte
reproducible for a given zlib.

Usage (from the repository root)::

    python scripts/make_demo_set.py [../shared/data/cifar10-jpeg.tar.gz] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

EXPECTED_SHA256 = "6a13eb520787687ab57fed4a5c477b8d7918dc3687e378a00047cfc6dc83eddf"
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
PER_CLASS = {"train": 500, "test": 100}
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"
DEFAULT_OUT = REPO_ROOT / "gsnn" / "assets" / "cifar10_demo.npz"


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_archive(path: Path) -> dict[tuple[str, str], dict[str, bytes]]:
    """Read every ``<split>/<class>/<file>`` JPEG of the archive into memory.

    Returns:
        ``{(split, class): {file_name: jpeg_bytes}}``.
    """
    files: dict[tuple[str, str], dict[str, bytes]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = member.name.lstrip("./").split("/")
            if len(parts) != 3 or parts[0] not in PER_CLASS:
                continue
            split, cls, fname = parts
            if not fname.lower().endswith((".jpg", ".jpeg")):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            files.setdefault((split, cls), {})[fname] = handle.read()
    return files


def select(files: dict[tuple[str, str], dict[str, bytes]]) -> dict[str, np.ndarray]:
    """Apply the selection rule and pack the arrays of the asset."""
    arrays: dict[str, np.ndarray] = {}
    for split, per_class in PER_CLASS.items():
        blobs: list[bytes] = []
        labels: list[int] = []
        names: list[str] = []
        for label, cls in enumerate(CLASSES):
            available = files.get((split, cls), {})
            chosen = sorted(available)[:per_class]
            if len(chosen) != per_class:
                raise SystemExit(
                    f"{split}/{cls}: need {per_class} files, archive has {len(available)}"
                )
            for fname in chosen:
                blobs.append(available[fname])
                labels.append(label)
                names.append(f"{cls}/{fname}")
        sizes = np.array([len(b) for b in blobs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{split}_offsets"] = offsets
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int32)
        arrays[f"{split}_files"] = np.asarray(names, dtype=str)
    arrays["class_names"] = np.asarray(CLASSES, dtype=str)
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a deflate-compressed ``.npz`` with fixed zip timestamps (reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE,
                        help="cifar10-jpeg.tar.gz (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output .npz (default: %(default)s)")
    args = parser.parse_args(argv)

    if not args.source.is_file():
        print(f"error: {args.source} not found (expected cifar10-jpeg.tar.gz, "
              "see ../shared/data/README.md)", file=sys.stderr)
        return 1
    digest = sha256_of(args.source)
    if digest != EXPECTED_SHA256:
        print(f"error: sha256 of {args.source} is {digest}, expected {EXPECTED_SHA256}",
              file=sys.stderr)
        return 1

    arrays = select(read_archive(args.source))
    arrays["source_sha256"] = np.asarray(digest, dtype=str)
    write_npz(args.out, arrays)

    n_train, n_test = len(arrays["train_labels"]), len(arrays["test_labels"])
    jpeg_bytes = arrays["train_jpeg"].size + arrays["test_jpeg"].size
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {n_train} train + {n_test} test images, "
          f"{jpeg_bytes} JPEG bytes -> {size} bytes on disk "
          f"({size / (n_train + n_test):.0f} B/image), sha256 {sha256_of(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
