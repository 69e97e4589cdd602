"""Every paper-scale config (experiments/configs: ResNet-19 CIFAR-10/100, VGG-16 CIFAR-10,
ResNet-34 ImageNet; direct, genetic, STE) loads, states what the paper needs, and runs one
training step at smoke size on generated data of the dataset's shape."""
import pathlib
import sys

import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn import data as D
from gsnn import evolution as EV
from gsnn.nn import networks as M
from gsnn import training

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
BENCHMARKS = {"resnet19_cifar10": (10, 32, "resnet19"), "resnet19_cifar100": (100, 32, "resnet19"),
              "vgg16_cifar10": (10, 32, "vgg16"), "resnet34_imagenet": (1000, 224, "resnet34")}


def _generated(num_classes: int, side: int, n_train: int = 16, n_test: int = 8) -> D.ArrayDataset:
    rng = np.random.default_rng(0)
    return D.ArrayDataset(
        name="generated", train_images=rng.integers(0, 256, (n_train, side, side, 3), dtype=np.uint8),
        train_labels=rng.integers(0, num_classes, n_train).astype(np.int32),
        test_images=rng.integers(0, 256, (n_test, side, side, 3), dtype=np.uint8),
        test_labels=rng.integers(0, num_classes, n_test).astype(np.int32),
        class_names=tuple(f"c{i}" for i in range(num_classes)))


@pytest.mark.parametrize("bench", list(BENCHMARKS))
def test_paper_config_states_the_paper_setting(bench):
    classes, side, arch = BENCHMARKS[bench]
    for variant in ("direct", "genetic", "ste"):
        cfg = cfgs.load_config(f"{bench}:{variant}")
        assert (cfg.model.arch, cfg.model.num_classes, cfg.model.T) == (arch, classes, 4)
        assert cfg.model.genetic.encoding == ("direct" if variant == "direct" else "position")
        assert M.default_input_shape(arch) == (side, side, 3)
        assert cfg.data.source in ("cifar10", "cifar100", "imagenet2012")
    assert cfgs.load_config(f"{bench}:ste").evolve.final_variants == ("evolved", "random", "direct")
    with pytest.raises(ValueError, match="valid"):
        cfgs.load_config(f"{bench}:evolved")


# Every architecture runs its direct and genetic variants. The two ResNet-19 configs
# differ only in the read-out's classes: resnet19_cifar10 runs direct and STE (whose final
# training trains its genetic variant from the evolved genome), resnet19_cifar100 its
# genetic variant. The STE variants differ from the genetic ones only in their evolve
# section, which runs the same evolution code whatever the architecture: one of them
# (ResNet-19) covers it, and the states-the-paper-setting test above loads every one.
SMOKE_RUNS = [("resnet19_cifar10", "direct"), ("resnet19_cifar10", "ste"), ("resnet19_cifar100", "genetic"),
              ("vgg16_cifar10", "direct"), ("vgg16_cifar10", "genetic"),
              ("resnet34_imagenet", "direct"), ("resnet34_imagenet", "genetic")]
# ImageNet's ResNet-34 runs on 32x32 generated images: the same program at 1/49 the work
# (the stem and three strided stages take 32 to 1x1; global average pooling before the
# read-out makes the network independent of the image side).
SMOKE_SIDE = {"resnet34_imagenet": 32}


@pytest.mark.slow
@pytest.mark.parametrize("bench,variant", SMOKE_RUNS)
def test_paper_config_runs_one_step_at_smoke_size(bench, variant, tmp_path):
    classes, side, _ = BENCHMARKS[bench]
    side = SMOKE_SIDE.get(bench, side)
    cfg = cfgs.load_config(f"{bench}:{variant}", ["smoke=true", "train.batch_size=4", "train.eval_batch_size=8",
                                               "data.stream=false", "model.T=1", "evolve.search.generations=1",
                                               "evolve.inner.steps=1", "evolve.inner.val_size=8"]
                           # the evolved final only: random and direct train as the other rows do
                           + (["evolve.final_variants=('evolved',)"] if variant == "ste" else []))
    ds = _generated(classes, side, n_train=4)
    if variant == "ste":
        r = EV.run_evolution(cfg, tmp_path, dataset=_generated(classes, side, n_train=32, n_test=8), progress=False)
        assert len(r["generations"]) == cfg.evolve.search.generations and "evolved" in r["final"]
    else:
        r = training.train_and_evaluate(cfg, None, dataset=ds, progress=False)
        assert r["epochs_completed"] == 1 and np.isfinite(r["history"][0]["train_loss"])


def test_runner_dry_run_describes_the_compute(capsys):
    import paper

    assert paper.main(["resnet19_cifar10:genetic", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4,068,138 parameters" in out and "68.0% fewer" in out and "GMAC per image" in out
