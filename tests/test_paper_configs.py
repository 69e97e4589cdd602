"""Every paper-scale config (experiments/configs: ResNet-19 CIFAR-10/100, VGG-16 CIFAR-10,
ResNet-34 ImageNet; direct, genetic, STE) loads, states what the paper needs, and traces its
training step (and the STE config its population evaluation) at the paper's shapes and
settings: shapes and trees checked, nothing compiled, so that the suite stays in minutes."""
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn import data as D
from gsnn import evolution as EV
from gsnn.evolution import genome as GN
from gsnn.nn import networks as M
from gsnn.training.steps import make_steps

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


@pytest.mark.parametrize("bench", list(BENCHMARKS))
def test_every_paper_config_traces_its_training_step_at_the_papers_shapes(bench):
    """The direct and genetic model of every benchmark (the STE config trains the genetic
    one), traced with its optimiser at the paper's batch and image side (224 for
    ImageNet): shapes only, nothing compiled. The state keeps its tree and shapes through
    the step, the loss is a scalar and the read-out has the dataset's classes."""
    classes, side, _ = BENCHMARKS[bench]
    for variant in ("direct", "genetic"):
        cfg = cfgs.load_config(f"{bench}:{variant}")
        steps = make_steps(cfg, 100, mean=np.full(3, 120.0), std=np.full(3, 60.0), input_shape=(side, side, 3))
        state = jax.eval_shape(steps.init, jax.random.key(0))
        b = cfg.train.batch_size
        images = jax.ShapeDtypeStruct((b, side, side, 3), jnp.uint8)
        labels = jax.ShapeDtypeStruct((b,), jnp.int32)
        new, metrics = jax.eval_shape(steps.pure_train_step, state, images, labels, jax.random.key(1))
        shapes = lambda t: jax.tree.map(lambda a: (a.shape, a.dtype), t)
        assert shapes(new) == shapes(state), (bench, variant)
        assert metrics["loss"].shape == () and metrics["accuracy"].shape == ()
        logits = jax.eval_shape(
            lambda p, bs, x: steps.model.apply({"params": p, "batch_stats": bs}, x, train=False,
                                               rngs={"coding": jax.random.key(2)}),
            state.params, state.batch_stats, jax.ShapeDtypeStruct((b, side, side, 3), jnp.float32))
        assert logits.shape == (b, classes), (bench, variant)


def test_the_ste_configs_wiring_search_traces_at_the_papers_settings():
    """resnet19_cifar10:ste's population evaluation (P = 32 genomes, each 50 inner steps
    of batch 64 on ResNet-19 at T = 4, then validation on 5,000 images) traced on
    generated images of CIFAR's shape: one fitness per member. The evolution's numbers
    are tested on small networks in tests/test_evolve.py; every other config's training
    step is traced above. (Until 2026-12-06 seven configs each ran a compiled smoke
    step here, 460 s of the suite.)"""
    classes, side, _ = BENCHMARKS["resnet19_cifar10"]
    cfg = cfgs.load_config("resnet19_cifar10:ste")
    e = cfg.evolve
    problem = EV.make_problem(cfg, _generated(classes, side, n_train=e.inner.val_size + e.inner.batch, n_test=8))
    genome = GN.default_genome(problem.spec, problem.reference_params)
    population = jax.tree.map(lambda a: jnp.broadcast_to(a, (e.search.population,) + a.shape), genome)
    xb, yb = EV.generation_batches(problem, 0)
    assert xb.shape == (e.inner.steps, e.inner.batch, side, side, 3)
    out = jax.eval_shape(problem.evaluate_population, population, jax.random.key(0), xb, yb, jnp.asarray(0))
    assert out["fitness"].shape == (e.search.population,)


def test_runner_dry_run_describes_the_compute(capsys):
    import paper

    assert paper.main(["resnet19_cifar10:genetic", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4,068,138 parameters" in out and "68.0% fewer" in out and "GMAC per image" in out
