"""Tests of gsnn.data: demo asset, image folders / archives, TFDS, batching, JAX ops."""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gsnn import data
from gsnn.data import ArrayDataset, DataError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

# Image-folder fixture: 3 classes (folder order on disk is not sorted on purpose),
# 6x8 (HxW) images. PNGs encode (class, split, index) in their pixels exactly.
CLASSES = ("bee", "ant", "cat")  # sorted -> ant=0, bee=1, cat=2
H, W = 6, 8
N_TRAIN, N_TEST = 4, 2


def _png_pixels(cls: int, split: int, i: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 50 * cls
    img[..., 1] = split
    img[..., 2] = i
    img[0, 0] = (7, 7, 7)  # break symmetry for orientation checks
    return img


def _make_tree(root: Path) -> Path:
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        for cname in CLASSES:
            folder = root / split / cname
            folder.mkdir(parents=True)
            cls = sorted(CLASSES).index(cname)
            for i in range(n):
                Image.fromarray(_png_pixels(cls, split == "test", i)).save(folder / f"{i:03d}.png")
            # one JPEG per class, sorted last; plus files that must be ignored
            Image.fromarray(np.full((H, W, 3), 50 * cls, np.uint8)).save(folder / "zzz.jpg")
            (folder / "notes.txt").write_text("not an image")
            (folder / ".hidden.png").write_bytes(b"junk")
    return root


def _make_tar(tree: Path, out: Path, top: str | None = "mydata") -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(tree, arcname=top if top else ".")
    return out


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return _make_tree(tmp_path / "tiny")


def _check_tiny(ds: ArrayDataset, name: str = "tiny") -> None:
    assert ds.name == name
    assert ds.class_names == ("ant", "bee", "cat")
    assert ds.num_classes == 3
    assert ds.image_shape == (H, W, 3)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
    assert len(ds.train_labels) == 3 * (N_TRAIN + 1)
    assert len(ds.test_labels) == 3 * (N_TEST + 1)
    np.testing.assert_array_equal(ds.class_counts("train"), [N_TRAIN + 1] * 3)
    # ordered by class then file name: 000.png ... then zzz.jpg
    for split, n, images, labels in (
        (0, N_TRAIN, ds.train_images, ds.train_labels),
        (1, N_TEST, ds.test_images, ds.test_labels),
    ):
        for cls in range(3):
            rows = np.flatnonzero(labels == cls)
            assert list(rows) == list(range(cls * (n + 1), (cls + 1) * (n + 1)))
            for i in range(n):
                np.testing.assert_array_equal(images[rows[i]], _png_pixels(cls, split, i))
            jpeg = images[rows[n]].astype(int)
            assert abs(jpeg[..., 0].mean() - 50 * cls) < 3  # lossy but close


# ---------------------------------------------------------------- demo asset


def test_demo_set() -> None:
    assert data.DEMO_ASSET.stat().st_size <= 3 * 2**20
    with np.load(data.DEMO_ASSET, allow_pickle=False) as z:
        assert z["train_jpeg"].dtype == np.uint8 and z["train_jpeg"].ndim == 1
        assert len(z["train_offsets"]) == 5001
    ds = data.load_demo()
    assert ds.name == "demo"
    assert ds.train_images.shape == (5000, 32, 32, 3)
    assert ds.test_images.shape == (1000, 32, 32, 3)
    assert ds.train_images.dtype == np.uint8 and ds.test_images.dtype == np.uint8
    assert ds.train_labels.dtype == np.int32
    assert ds.class_names == CIFAR10_CLASSES
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10
    np.testing.assert_array_equal(ds.class_counts("train"), [500] * 10)
    np.testing.assert_array_equal(ds.class_counts("test"), [100] * 10)
    assert ds.train_images.std() > 30  # real pixels, not blanks
    # a second load returns equal but independent arrays
    again = data.load_dataset("demo")
    np.testing.assert_array_equal(again.train_images, ds.train_images)
    again.train_images[0] = 0
    assert data.load_demo().train_images[0].any()


# ---------------------------------------------------------------- image folders


def test_image_folder_dir(tree: Path, tmp_path: Path) -> None:
    ds = data.load_image_folder(tree, cache_dir=tmp_path / "cache")
    _check_tiny(ds)
    via_registry = data.load_dataset(str(tree), cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(via_registry.train_images, ds.train_images)


@pytest.mark.parametrize("top", ["mydata", None])
def test_image_folder_tar(tree: Path, tmp_path: Path, top: str | None) -> None:
    archive = _make_tar(tree, tmp_path / "tiny.tar.gz", top)
    ds = data.load_dataset(archive, cache_dir=tmp_path / "cache")
    _check_tiny(ds)
    from_dir = data.load_image_folder(tree, use_cache=False)
    np.testing.assert_array_equal(ds.train_images, from_dir.train_images)
    np.testing.assert_array_equal(ds.test_labels, from_dir.test_labels)


def test_image_folder_tgz_and_image_size(tree: Path, tmp_path: Path) -> None:
    archive = _make_tar(tree, tmp_path / "tiny.tgz")
    ds = data.load_image_folder(archive, cache_dir=tmp_path / "cache", image_size=4)
    assert ds.image_shape == (4, 4, 3)
    assert ds.name == "tiny"


def _counting_decoder(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = data.decode._decode_image

    def counting(source, what, size=None):
        calls.append(what)
        return real(source, what, size)

    monkeypatch.setattr(data.decode, "_decode_image", counting)
    return calls


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("decoded although a valid cache exists")

    monkeypatch.setattr(data.decode, "_decode_image", fail)


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_cache_dir_reused_and_rebuilt(tree: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    first = data.load_image_folder(tree, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and not list(cache.glob(".tmp-*"))

    with monkeypatch.context() as m:
        _forbid_decoding(m)
        second = data.load_image_folder(tree, cache_dir=cache)
    np.testing.assert_array_equal(second.train_images, first.train_images)
    assert second.class_names == first.class_names

    # change the source: one more training image of class "cat" -> rebuilt
    Image.fromarray(_png_pixels(2, 0, 9)).save(tree / "train" / "cat" / "009.png")
    calls = _counting_decoder(monkeypatch)
    third = data.load_image_folder(tree, cache_dir=cache)
    assert len(calls) == len(third.train_labels) + len(third.test_labels)
    assert len(third.train_labels) == len(first.train_labels) + 1
    assert len(list(cache.glob("*.npz"))) == 1  # the stale cache file was replaced


def test_cache_tar_reused_and_rebuilt(tree: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    archive = _make_tar(tree, tmp_path / "tiny.tar.gz")
    first = data.load_image_folder(archive, cache_dir=cache)
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        data.load_image_folder(archive, cache_dir=cache)

    # rewrite the archive with one training image of "ant" fewer -> rebuilt
    (tree / "train" / "ant" / "000.png").unlink()
    _make_tar(tree, archive)
    _bump_mtime(archive)
    calls = _counting_decoder(monkeypatch)
    second = data.load_image_folder(archive, cache_dir=cache)
    assert calls and len(second.train_labels) == len(first.train_labels) - 1

    # GSNN_CACHE_DIR is the default cache location
    monkeypatch.setenv("GSNN_CACHE_DIR", str(tmp_path / "envcache"))
    data.load_image_folder(archive)
    assert list((tmp_path / "envcache").glob("tiny-*.npz"))


def test_corrupt_cache_is_rebuilt(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    data.load_image_folder(tree, cache_dir=cache)
    (cache_file,) = cache.glob("*.npz")
    cache_file.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="cache"):
        ds = data.load_image_folder(tree, cache_dir=cache)
    _check_tiny(ds)


# ---------------------------------------------------------------- bad sources


def _expect_error(source, *fragments: str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        data.load_dataset(source, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "data.tar.gz"
    with pytest.raises(DataError, match="nowhere") as info:
        data.load_image_folder(missing)
    assert "train/<class>" in str(info.value)


def test_unknown_name() -> None:
    message = _expect_error("cifar11", "cifar11", "demo", "cifar10", "imagenet2012")
    assert isinstance(DataError(message), ValueError)


def test_not_a_directory_or_archive(tmp_path: Path) -> None:
    stray = tmp_path / "images.zip"
    stray.write_bytes(b"PK")
    _expect_error(stray, str(stray), ".tar.gz")


def test_missing_test_split(tree: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(tree / "test")
    _expect_error(tree, str(tree), "test/", cache_dir=tmp_path / "c")


def test_no_class_folders(tmp_path: Path) -> None:
    (tmp_path / "d" / "train").mkdir(parents=True)
    (tmp_path / "d" / "test").mkdir()
    _expect_error(tmp_path / "d", "no class folders", cache_dir=tmp_path / "c")


def test_empty_class_folder(tree: Path, tmp_path: Path) -> None:
    (tree / "train" / "dog").mkdir()
    (tree / "test" / "dog").mkdir()
    (tree / "test" / "dog" / "readme.txt").write_text("x")
    _expect_error(tree, str(tree), "train/dog", "no images", cache_dir=tmp_path / "c")
    # the same problem inside an archive (empty directories are tar members)
    archive = _make_tar(tree, tmp_path / "empty_class.tar.gz")
    _expect_error(archive, str(archive), "dog", "no images", cache_dir=tmp_path / "c")


def test_mismatched_class_sets(tree: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(tree / "test" / "bee")
    _expect_error(tree, str(tree), "bee", cache_dir=tmp_path / "c")


def test_corrupt_image(tree: Path, tmp_path: Path) -> None:
    bad = tree / "test" / "bee" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _expect_error(tree, str(bad), "cannot decode", cache_dir=tmp_path / "c")
    archive = _make_tar(tree, tmp_path / "bad.tar.gz")
    _expect_error(archive, str(archive), "mydata/test/bee/001.png", cache_dir=tmp_path / "c")


def test_differing_sizes(tree: Path, tmp_path: Path) -> None:
    odd = tree / "train" / "cat" / "005.png"
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(odd)
    _expect_error(tree, str(odd), "same size", "image_size", cache_dir=tmp_path / "c")
    ds = data.load_dataset(tree, cache_dir=tmp_path / "c", image_size=(6, 8))
    assert ds.image_shape == (6, 8, 3)


def test_truncated_archive(tree: Path, tmp_path: Path) -> None:
    archive = _make_tar(tree, tmp_path / "full.tar.gz")
    blob = archive.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(blob[: len(blob) // 2])
    _expect_error(truncated, str(truncated), "truncated or corrupt", cache_dir=tmp_path / "c")
    garbage = tmp_path / "garbage.tgz"
    garbage.write_bytes(os.urandom(2000))
    _expect_error(garbage, str(garbage), "truncated or corrupt", cache_dir=tmp_path / "c")


# ---------------------------------------------------------------- batching


def test_batches_deterministic_and_complete() -> None:
    n = 103
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    labels = np.arange(n, dtype=np.int64) % 7

    def epoch_ids(seed, epoch, **kw):
        return [b[0][:, 0, 0, 0].copy() for b in data.batches(images, labels, 10, seed=seed,
                                                               epoch=epoch, **kw)]

    a = epoch_ids(3, 1, drop_remainder=False)
    b = epoch_ids(3, 1, drop_remainder=False)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b) == 11
    assert len(a) == data.num_batches(n, 10, drop_remainder=False)
    np.testing.assert_array_equal(np.sort(np.concatenate(a)), np.arange(n))  # once each
    assert not np.array_equal(np.concatenate(a), np.concatenate(epoch_ids(3, 2, drop_remainder=False)))
    assert not np.array_equal(np.concatenate(a), np.concatenate(epoch_ids(4, 1, drop_remainder=False)))

    dropped = epoch_ids(3, 1)
    assert len(dropped) == data.num_batches(n, 10) == 10
    assert all(len(x) == 10 for x in dropped)
    assert len(np.unique(np.concatenate(dropped))) == 100

    for x, y in data.batches(images, labels, 10, seed=0, epoch=0):
        assert x.dtype == np.uint8 and x.shape == (10, 1, 1, 1)
        assert y.dtype == np.int32
        np.testing.assert_array_equal(y, x[:, 0, 0, 0] % 7)  # pairs stay aligned

    ordered = epoch_ids(0, 0, shuffle=False, drop_remainder=False)
    np.testing.assert_array_equal(np.concatenate(ordered), np.arange(n))
    resumed = epoch_ids(3, 1, drop_remainder=False, start_batch=4)
    assert all(np.array_equal(x, y) for x, y in zip(resumed, a[4:]))
    with pytest.raises(ValueError):
        data.batches(images, labels[:-1], 10, seed=0, epoch=0)


# ---------------------------------------------------------------- JAX preprocessing


def test_normalize_and_stats() -> None:
    images = np.array([[[[0, 255, 51]]]], np.uint8)
    out = data.normalize(images, (0.0, 0.5, 0.2), (1.0, 0.5, 0.1))
    assert out.dtype == jnp.float32 and out.shape == (1, 1, 1, 3)
    np.testing.assert_allclose(np.asarray(out)[0, 0, 0], [0.0, 1.0, 0.0], atol=1e-6)
    assert data.stats_for("demo") == (data.CIFAR10_MEAN, data.CIFAR10_STD)
    assert data.stats_for("tfds:cifar100") == (data.CIFAR100_MEAN, data.CIFAR100_STD)
    assert data.stats_for("../data/cifar10-jpeg.tar.gz")[0] == data.CIFAR10_MEAN
    assert data.stats_for("imagenet2012")[1] == data.IMAGENET_STD
    with pytest.raises(ValueError):
        data.normalize(images, (0.1, 0.2), (1.0, 1.0))


def test_random_crop_flip() -> None:
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(64, 8, 6, 3)).astype(np.float32))
    key = jax.random.key(1)
    fn = jax.jit(data.random_crop_flip, static_argnames=("padding", "flip"))

    out = fn(key, images)
    assert out.shape == images.shape and out.dtype == images.dtype

    same = fn(key, images, padding=0, flip=False)
    np.testing.assert_array_equal(np.asarray(same), np.asarray(images))

    flipped = np.asarray(fn(key, images, padding=0, flip=True))
    src = np.asarray(images)
    is_flip = [np.array_equal(f, np.flip(s, axis=1)) for f, s in zip(flipped, src)]
    is_same = [np.array_equal(f, s) for f, s in zip(flipped, src)]
    assert all(a or b for a, b in zip(is_flip, is_same))
    assert 10 < sum(is_flip) < 54  # p = 0.5 per image

    # every padded crop is a window of the zero-padded image, possibly mirrored
    cropped = np.asarray(fn(jax.random.key(2), images, padding=2, flip=True))
    padded = np.pad(src, ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = set()
    for i in range(len(src)):
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            for cand in (cropped[i], np.flip(cropped[i], axis=1))
            if np.array_equal(cand, padded[i, dy : dy + 8, dx : dx + 6])
        ]
        assert hits, i
        offsets.add(hits[0])
    assert len(offsets) > 5  # offsets vary per image
    # different keys give different augmentations
    assert not np.array_equal(cropped, np.asarray(fn(jax.random.key(3), images, padding=2)))


# ---------------------------------------------------------------- splits / subsets


def _indexed_dataset(per_class=(30, 20, 10)) -> ArrayDataset:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)]).astype(np.int32)
    n = len(labels)
    images = np.zeros((n, 2, 2, 1), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # identifies each example
    test = np.zeros((6, 2, 2, 1), np.uint8) + 200
    return ArrayDataset("toy", images, labels, test, np.array([0, 1, 2, 0, 1, 2]), ("a", "b", "c"))


def test_split_validation() -> None:
    ds = _indexed_dataset()
    train, val = ds.split_validation(0.2, seed=5)
    held = val.test_images[:, 0, 0, 0]
    rest = train.train_images[:, 0, 0, 0]
    assert len(held) == 12 and len(rest) == 48
    assert not set(held) & set(rest)
    assert sorted(set(held) | set(rest)) == list(range(60))
    np.testing.assert_array_equal(val.class_counts("test"), [6, 4, 2])  # stratified
    np.testing.assert_array_equal(train.class_counts("train"), [24, 16, 8])
    np.testing.assert_array_equal(val.test_labels, ds.train_labels[held])
    np.testing.assert_array_equal(train.test_images, ds.test_images)  # test untouched
    np.testing.assert_array_equal(val.train_images, train.train_images)
    assert val.class_names == ds.class_names and train.name == val.name == "toy"

    again, val2 = ds.split_validation(0.2, seed=5)
    np.testing.assert_array_equal(val2.test_images, val.test_images)
    _, other = ds.split_validation(0.2, seed=6)
    assert not np.array_equal(other.test_images, val.test_images)
    _, counted = ds.split_validation(7, seed=0)
    assert len(counted.test_labels) == 7 and counted.class_counts("test").sum() == 7
    # largest remainders by hand: classes of 30, 20, 10; 7 of 60 -> quotas 3.5, 2.33, 1.17,
    # floors 3, 2, 1, and the one left goes to the largest remainder (0.5, class 0)
    np.testing.assert_array_equal(counted.class_counts("test"), [4, 2, 1])
    # 3 of 60 -> quotas 1.5, 1, 0.5: remainders 0.5, 0, 0.5 tie; the lower class index wins
    np.testing.assert_array_equal(ds.split_validation(3, seed=0)[1].class_counts("test"), [2, 1, 0])
    # 11 of 60 -> quotas 5.5, 3.67, 1.83: floors 5, 3, 1, two left: classes 2 (0.83) and 1 (0.67)
    np.testing.assert_array_equal(ds.split_validation(11, seed=0)[1].class_counts("test"), [5, 4, 2])
    with pytest.raises(ValueError):
        ds.split_validation(1.5, seed=0)
    with pytest.raises(ValueError):
        ds.split_validation(60, seed=0)


def test_subset() -> None:
    ds = _indexed_dataset()
    sub = ds.subset(train_per_class=5, test_per_class=1, seed=1)
    np.testing.assert_array_equal(sub.class_counts("train"), [5, 5, 5])
    np.testing.assert_array_equal(sub.class_counts("test"), [1, 1, 1])
    ids = sub.train_images[:, 0, 0, 0]
    np.testing.assert_array_equal(sub.train_labels, ds.train_labels[ids])
    assert np.array_equal(ids, np.sort(ids))
    np.testing.assert_array_equal(ds.subset(5, seed=1).train_images, sub.train_images)
    assert len(ds.subset(train_per_class=2).test_labels) == 6  # None keeps the split
    with pytest.raises(DataError, match="'c'"):
        ds.subset(train_per_class=11)


def test_subset_validation_split_comes_from_outside_the_training_subset() -> None:
    ds = _indexed_dataset()
    plain = ds.subset(train_per_class=5, test_per_class=1, seed=3)
    sub = ds.subset(train_per_class=5, test_per_class=1, seed=3, val_per_class=4)
    # adding a validation split leaves the training subset (and test) unchanged
    np.testing.assert_array_equal(sub.train_images, plain.train_images)
    np.testing.assert_array_equal(sub.test_images, plain.test_images)
    train_ids, val_ids = set(sub.train_images[:, 0, 0, 0]), sub.val_images[:, 0, 0, 0]
    assert not train_ids & set(val_ids) and len(set(val_ids)) == 12
    np.testing.assert_array_equal(sub.class_counts("val"), [4, 4, 4])
    np.testing.assert_array_equal(sub.val_labels, ds.train_labels[val_ids])
    assert sub.num_val == 12 and "val=12" in repr(sub)
    assert [len(y) for _, y in sub.val_batches(5)] == [5, 5, 2]
    # another seed draws another training subset and validation split
    other = ds.subset(train_per_class=5, test_per_class=1, seed=4, val_per_class=4)
    assert set(other.train_images[:, 0, 0, 0]) != train_ids
    # the whole training split: validation is held out of it
    whole = ds.subset(seed=3, val_per_class=4)
    assert whole.num_train == 48 and not set(whole.train_images[:, 0, 0, 0]) & set(whole.val_images[:, 0, 0, 0])
    with pytest.raises(DataError, match="outside the training subset"):
        ds.subset(train_per_class=8, seed=0, val_per_class=3)  # class 'c' has 10: 2 left outside
    with pytest.raises(ValueError, match="no validation split"):
        plain.val_batches(5)


def test_array_dataset_validation() -> None:
    good = _indexed_dataset()
    with pytest.raises(DataError):
        ArrayDataset("x", good.train_images.astype(np.float32), good.train_labels,
                     good.test_images, good.test_labels, good.class_names)
    with pytest.raises(DataError):
        ArrayDataset("x", good.train_images, good.train_labels + 5,
                     good.test_images, good.test_labels, good.class_names)
    assert "toy" in repr(good) and "train=60" in repr(good)


# ---------------------------------------------------------------- tensorflow-datasets


FAKE_TRAIN, FAKE_TEST = 40, 20


def _fake_image(split: int, i: int) -> np.ndarray:
    img = np.random.default_rng((split, i)).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    img[0, 0, 0] = i  # identifies the example
    img[0, 0, 1] = split
    return img


def _fake_label(i: int) -> int:
    return (3 * i) % 10


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir holding a tiny dataset that has cifar10's name, version and features.

    Built with a GeneratorBasedBuilder defined here (not registered), then read back by
    the REAL ``cifar10`` builder of tensorflow-datasets, as if ``tfds build cifar10`` had
    been run on a machine with network access.
    """
    pytest.importorskip("tensorflow")
    tfds = pytest.importorskip("tensorflow_datasets")
    real_version = tfds.builder_cls("cifar10").VERSION

    class FakeCifar10(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = "cifar10"
        VERSION = real_version

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "id": tfds.features.Text(),
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(names=list(CIFAR10_CLASSES)),
                }),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, FAKE_TRAIN),
                    "test": self._generate_examples(1, FAKE_TEST)}

        def _generate_examples(self, split, n):
            for i in range(n):
                key = f"{split}_{i}"
                yield key, {"id": key, "image": _fake_image(split, i), "label": _fake_label(i)}

    root = tmp_path_factory.mktemp("tfds")
    FakeCifar10(data_dir=str(root)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return root


def _check_fake(images: np.ndarray, labels: np.ndarray, split: int, n: int) -> None:
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    ids = images[:, 0, 0, 0].astype(int)
    assert sorted(ids) == list(range(n))
    for img, label, i in zip(images, labels, ids):
        assert label == _fake_label(i)
        np.testing.assert_array_equal(img, _fake_image(split, i))


def test_load_tfds_prepared(tfds_dir: Path) -> None:
    ds = data.load_tfds("cifar10", data_dir=tfds_dir)
    assert ds.name == "cifar10" and ds.class_names == CIFAR10_CLASSES
    assert ds.train_images.shape == (FAKE_TRAIN, 32, 32, 3)
    assert ds.test_images.shape == (FAKE_TEST, 32, 32, 3)
    _check_fake(ds.train_images, ds.train_labels, 0, FAKE_TRAIN)
    _check_fake(ds.test_images, ds.test_labels, 1, FAKE_TEST)

    # the registry name and the tfds: prefix take the same path
    via_registry = data.load_dataset("cifar10", data_dir=tfds_dir)
    np.testing.assert_array_equal(via_registry.train_images, ds.train_images)
    small = data.load_dataset("tfds:cifar10", data_dir=tfds_dir, image_size=16)
    assert small.image_shape == (16, 16, 3) and small.train_images.dtype == np.uint8
    np.testing.assert_array_equal(small.train_labels, ds.train_labels)


def test_tfds_batches_stream(tfds_dir: Path) -> None:
    stream = data.tfds_batches("cifar10", "test", 8, data_dir=tfds_dir)
    got = list(stream)
    assert [len(y) for _, y in got] == [8, 8, 4]
    _check_fake(np.concatenate([x for x, _ in got]), np.concatenate([y for _, y in got]),
                1, FAKE_TEST)
    shuffled = list(data.tfds_batches("cifar10", "train", 16, data_dir=tfds_dir, shuffle=True,
                                      seed=1, drop_remainder=True, image_size=8))
    assert [x.shape for x, _ in shuffled] == [(16, 8, 8, 3)] * 2


def test_tfds_not_prepared(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    empty = tmp_path / "empty_tfds"
    empty.mkdir()
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        data.load_tfds("cifar10", data_dir=empty)
    message = str(info.value)
    assert "cifar10" in message and str(empty) in message and "tfds build" in message
    assert time.perf_counter() - start < 20  # no download attempt, no hang
    with pytest.raises(DataError, match="downloads/manual"):
        data.load_dataset("imagenet2012", data_dir=empty)
    with pytest.raises(DataError, match="no_such_dataset_xyz"):
        data.load_dataset("tfds:no_such_dataset_xyz", data_dir=empty)
    with pytest.raises(DataError, match="cifar10"):
        list(data.tfds_batches("cifar10", "train", 4, data_dir=empty))


# ---------------------------------------------------------------- integrity


def test_archive_checked_against_given_sha256(tree: Path, tmp_path: Path) -> None:
    archive = _make_tar(tree, tmp_path / "sums.tar.gz")
    good = data.file_sha256(archive)
    ds = data.load_dataset(archive, cache_dir=tmp_path / "c", sha256=good)
    assert ds.num_classes == 3
    _expect_error(archive, "does not match", "Fetch it again", cache_dir=tmp_path / "c", sha256="0" * 64)


def test_archive_checked_against_known_sha256_by_name(tree: Path, tmp_path: Path, monkeypatch) -> None:
    archive = _make_tar(tree, tmp_path / "known.tar.gz")
    monkeypatch.setitem(data.KNOWN_SHA256, "known.tar.gz", "f" * 64)
    _expect_error(archive, "known.tar.gz", "does not match", cache_dir=tmp_path / "c")
    monkeypatch.setitem(data.KNOWN_SHA256, "known.tar.gz", data.file_sha256(archive))
    assert data.load_dataset(archive, cache_dir=tmp_path / "c").num_classes == 3


def test_sha256_for_a_directory_is_refused(tree: Path, tmp_path: Path) -> None:
    _expect_error(tree, "directory", cache_dir=tmp_path / "c", sha256="a" * 64)


def test_streaming_dataset_matches_the_in_memory_one(tfds_dir: Path) -> None:
    stream = data.open_tfds_stream("cifar10", data_dir=tfds_dir)
    assert (stream.num_train, stream.num_test, stream.num_classes) == (FAKE_TRAIN, FAKE_TEST, 10)
    assert stream.image_shape == (32, 32, 3)
    test = list(stream.test_batches(8))
    _check_fake(np.concatenate([x for x, _ in test]), np.concatenate([y for _, y in test]), 1, FAKE_TEST)
    epoch0 = [y for _, y in stream.train_batches(16, seed=0, epoch=0)]
    assert [len(y) for y in epoch0] == [16] * (FAKE_TRAIN // 16)
    sample = stream.materialise(10, 4, seed=0)
    assert sample.train_images.shape == (10, 32, 32, 3) and len(sample.test_labels) == 4
    assert set(sample.train_images[:, 0, 0, 0].tolist()) <= set(range(FAKE_TRAIN))


def test_a_stream_resumed_at_start_batch_yields_the_rest_of_the_epoch(tfds_dir: Path) -> None:
    """A mid-epoch resume reads from its batch on: the same batches as the whole epoch's tail."""
    stream = data.open_tfds_stream("cifar10", data_dir=tfds_dir)
    whole = list(stream.train_batches(8, seed=2, epoch=1))
    tail = list(stream.train_batches(8, seed=2, epoch=1, start_batch=2))
    assert len(tail) == len(whole) - 2 >= 1
    for (x, y), (xw, yw) in zip(tail, whole[2:]):
        np.testing.assert_array_equal(x, xw)
        np.testing.assert_array_equal(y, yw)


def test_training_streams_from_tfds(tfds_dir: Path) -> None:
    from gsnn import config as cfgs
    from gsnn import training

    cfg = cfgs.load_config("demo_direct", ["data.source=cifar10", f"data.data_dir={tfds_dir}", "data.stream=true",
                                        "model.width=0.125", "model.T=1", "train.epochs=1", "train.batch_size=8",
                                        "train.eval_batch_size=8", "train.log_every=0"])
    r = training.train_and_evaluate(cfg, None, progress=False)
    assert r["history"][0]["epoch"] == 1 and 0.0 <= r["test_accuracy"] <= 1.0
    with pytest.raises(ValueError, match="data.stream"):
        cfgs.load_config("demo_direct", ["data.stream=true"])


def test_a_subset_keeps_its_source_positions_and_its_fingerprint_hashes_train_and_val() -> None:
    import hashlib

    ds = _indexed_dataset()  # every image's pixel (0, 0, 0) is its index in the source split
    sub = ds.subset(train_per_class=5, test_per_class=1, seed=3, val_per_class=4)
    for split, images in (("train", sub.train_images), ("val", sub.val_images)):
        np.testing.assert_array_equal(sub.indices[split], images[:, 0, 0, 0])
    np.testing.assert_array_equal(ds.test_labels[sub.indices["test"]], sub.test_labels)
    # a subset of a subset still points into the source
    inner = sub.subset(train_per_class=2, seed=1)
    np.testing.assert_array_equal(inner.indices["train"], inner.train_images[:, 0, 0, 0])
    np.testing.assert_array_equal(inner.indices["val"], sub.indices["val"])
    # the hash, by hand: name and counts, then each split's positions as little-endian int64
    h = hashlib.sha256(f"{ds.name}|train=15|val=12|".encode())
    for split, images in (("train", sub.train_images), ("val", sub.val_images)):
        h.update(split.encode() + images[:, 0, 0, 0].astype("<i8").tobytes())
    assert sub.fingerprint() == h.hexdigest()
    assert ds.subset(train_per_class=5, test_per_class=1, seed=3, val_per_class=4).fingerprint() == sub.fingerprint()
    assert ds.subset(train_per_class=5, test_per_class=1, seed=4, val_per_class=4).fingerprint() != sub.fingerprint()
    # the test split does not enter it (it steers nothing)
    assert ds.subset(train_per_class=5, test_per_class=2, seed=3, val_per_class=4).fingerprint() == sub.fingerprint()
    train, val = ds.split_validation(6, seed=0)
    np.testing.assert_array_equal(train.indices["train"], train.train_images[:, 0, 0, 0])
    np.testing.assert_array_equal(val.indices["val"], val.test_images[:, 0, 0, 0])
