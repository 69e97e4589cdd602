"""Every bad input gets an error of a known type whose message names the problem (and,
where there is a closed set, the valid choices). The bad-input table of
docs/BAD_INPUTS.md lists these same cases; ``python tests/test_bad_inputs.py`` prints the
table from the messages the code gives now.
"""
import pathlib
import sys

import numpy as np
import pytest
from PIL import Image

from gsnn import bench as B
from gsnn import config as cfgs
from gsnn import data as D
from gsnn.nn import networks as M
from gsnn.core import lif as neurons
from gsnn import training as TR
from gsnn.config import GeneticConfig

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tree(root: pathlib.Path, classes=("ant", "bee"), n=2) -> pathlib.Path:
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((4, 4, 3), 40 * i, np.uint8)).save(d / f"{i}.png")
    return root


def _tar(src: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    import tarfile

    with tarfile.open(out, "w:gz") as t:
        t.add(src, arcname=src.name)
    return out


def missing_folder(tmp):
    D.load_dataset(tmp / "no" / "such" / "folder")


def empty_folder(tmp):
    (tmp / "empty" / "train").mkdir(parents=True)
    (tmp / "empty" / "test").mkdir(parents=True)
    D.load_dataset(tmp / "empty", cache_dir=tmp / "c")


def class_without_images(tmp):
    root = _tree(tmp / "d")
    for f in (root / "train" / "bee").iterdir():
        f.unlink()
    D.load_dataset(root, cache_dir=tmp / "c")


def unreadable_image(tmp):
    root = _tree(tmp / "d")
    (root / "train" / "ant" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    D.load_dataset(root, cache_dir=tmp / "c")


def truncated_archive(tmp):
    archive = _tar(_tree(tmp / "d"), tmp / "d.tar.gz")
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    D.load_dataset(archive, cache_dir=tmp / "c")


def wrong_sha256(tmp):
    archive = _tar(_tree(tmp / "d"), tmp / "d.tar.gz")
    D.load_dataset(archive, cache_dir=tmp / "c", sha256="0" * 64)


def checkpoint_of_another_config(tmp):
    ds = D.load_dataset("demo").subset(train_per_class=4, test_per_class=2, seed=0)
    base = cfgs.load_config("demo_direct", ["model.width=0.125", "model.T=1", "train.epochs=1", "train.batch_size=8",
                                         "train.log_every=0"])
    TR.train_and_evaluate(base, tmp / "run", dataset=ds, progress=False)
    other = cfgs.load_config("demo_direct", ["model.width=0.125", "model.T=2", "train.epochs=1", "train.batch_size=8",
                                          "train.log_every=0"])
    TR.train_and_evaluate(other, tmp / "run", dataset=ds, progress=False)


def batch_larger_than_data(tmp):
    ds = D.load_dataset("demo").subset(train_per_class=2, test_per_class=1, seed=0)
    TR.train_and_evaluate(cfgs.load_config("demo_direct", ["train.batch_size=64"]), None, dataset=ds, progress=False)


def race_batch_larger_than_data(tmp):
    from gsnn import evolution as EV

    ds = D.load_dataset("demo").subset(train_per_class=4, test_per_class=1, seed=0)  # 40 images
    cfg = cfgs.load_config("evolve_demo", ["evolve.race.top=2", "evolve.race.data=validation", "evolve.race.batch=64",
                                        "evolve.inner.val_size=8", "evolve.inner.batch=8"])
    EV.evolve(cfg, None, dataset=ds, progress=False)


def search_all_diverged(tmp):
    from gsnn.evolution import loop as EVL

    ds = D.load_dataset("demo").subset(train_per_class=4, test_per_class=1, seed=0)
    cfg = cfgs.Config(name="diverged", model=M.ModelConfig(arch="mlp", hidden=(8,), T=1,
                                                         genetic=GeneticConfig(encoding="position", genes=2)),
                   evolve=cfgs.EvolveConfig(
                       search=cfgs.SearchConfig(population=2, generations=1),
                       inner=cfgs.InnerLoopConfig(steps=1, batch=8, val_size=8),
                       fitness=cfgs.FitnessConfig(signal_every=0),
                       evaluation=cfgs.EvaluationConfig(shard=False, chunk_size=0, inject_nan=(0, 1))))
    EVL.evolve(cfg, tmp / "run", dataset=ds, progress=False)


def race_all_diverged(tmp):
    from gsnn.evolution import race as RC

    about = [dict(source=RC.SEARCH, generation=3, search_fitness=0.5), dict(source=RC.BASELINE, generation=0,
                                                                            search_fitness=None)]
    RC.pick_winner(np.array([-np.inf, -np.inf]), about, repeats=2)


def energy_without_a_density(tmp):
    from gsnn.analysis import energy

    synapses, _, _ = M.describe(M.build_model(M.ModelConfig(arch="mlp", hidden=(8,), T=2)), (4, 4, 3))
    energy.synaptic_operations(synapses, {}, T=2)


def model_images_without_channels(tmp):
    model = M.build_model(M.ModelConfig(arch="mlp", hidden=(8,), T=1))
    model.init(__import__("jax").random.key(0), np.zeros((2, 32, 32), np.float32))


def model_uint8_images(tmp):
    model = M.build_model(M.ModelConfig(arch="mlp", hidden=(8,), T=1))
    model.init(__import__("jax").random.key(0), np.zeros((2, 32, 32, 3), np.uint8))


def corrupt_config_file(tmp):
    path = tmp / "broken.py"
    path.write_text("def get_config(:\n")
    cfgs.load_config(str(path))


def _allocation_search(tmp, genes=4, **allocation):
    """The allocation search of a tiny position MLP (4 genes x 2 rules) on 4x4x2 images."""
    from gsnn.evolution import allocation as A
    from gsnn.evolution import budget as BG

    genetic = GeneticConfig(encoding="position", genes=genes, rules=2, **allocation.pop("genetic", {}))
    cfg = cfgs.Config(model=M.ModelConfig(arch="mlp", hidden=(8,), T=1, genetic=genetic),
                      evolve=cfgs.EvolveConfig(allocation=cfgs.AllocationConfig(genome="allocation", **allocation)))
    model = M.build_model(BG.search_model_config(cfg.validate()))
    BG.make_search(cfg, A.make_layout(model.cfg.genetic, *M.describe(model, (4, 4, 2))))


# (README wording of the input, function, error type, fragments the message must contain)
CASES = [
    ("unknown architecture `model.arch=resnet99`",
     lambda tmp: M.ModelConfig(arch="resnet99").validate(), ValueError, ["resnet99", "resnet19", "convnet_s"]),
    ("unknown dataset `data.source=cifar11`",
     lambda tmp: D.load_dataset("cifar11"), D.DataError, ["cifar11", "cifar10", "tfds:"]),
    ("unknown strategy `evolve.search.strategy=pso`",
     lambda tmp: cfgs.SearchConfig(strategy="pso"), ValueError, ["pso", "cma_es", "open_es"]),
    ("unknown surrogate `model.spiking.lif.surrogate=relu`",
     lambda tmp: neurons.LIFConfig(surrogate="relu").validate(), ValueError, ["relu", "atan", "sigmoid"]),
    ("unknown encoding `model.genetic.encoding=dna`",
     lambda tmp: GeneticConfig(encoding="dna", genes=4).validate(), ValueError, ["dna", "position", "neuron"]),
    ("unknown convolution `model.conv_impl=fft`",
     lambda tmp: M.ModelConfig(conv_impl="fft").validate(), ValueError, ["fft", "winograd", "taps", "xla"]),
    ("unknown benchmark workload `gsnn bench --workload w3`",
     lambda tmp: B.run_workload("w3"), ValueError, ["w3", "w1", "w2"]),
    ("genes <= 0 `model.genetic.genes=0`",
     lambda tmp: GeneticConfig(encoding="position", genes=0).validate(), ValueError, ["genes", "0"]),
    ("time steps <= 0 `model.T=0`",
     lambda tmp: M.ModelConfig(T=0).validate(), ValueError, ["T", ">= 1"]),
    ("population too small `evolve.search.population=1`",
     lambda tmp: cfgs.SearchConfig(population=1), ValueError, ["population", ">= 2"]),
    ("odd population for Open-ES `evolve.search.population=5`",
     lambda tmp: cfgs.SearchConfig(strategy="open_es", population=5), ValueError, ["even", "open_es"]),
    ("population not a multiple of the chunk `evolve.evaluation.chunk_size=4`, population 6",
     lambda tmp: cfgs.EvolveConfig(search=cfgs.SearchConfig(population=6),
                                   evaluation=cfgs.EvaluationConfig(chunk_size=4)),
     ValueError, ["multiple", "chunk_size"]),
    ("warm-up as long as training `train.warmup_epochs=2` with `train.epochs=1`",
     lambda tmp: cfgs.load_config("demo_direct", ["train.warmup_epochs=2", "train.epochs=1"]), ValueError,
     ["warmup_epochs", "less than train.epochs"]),
    ("batch larger than the data `train.batch_size=64` on 20 images",
     batch_larger_than_data, ValueError, ["batch_size=64", "larger than the training set"]),
    ("race batch larger than the training split `evolve.race.batch=64` on 32 images",
     race_batch_larger_than_data, ValueError, ["minibatches of 64 (evolve.race.batch)", "holds only 32 images",
                                               "smaller evolve.race.batch"]),
    ("search std <= 0 `evolve.search.std_init=-0.1`",
     lambda tmp: cfgs.SearchConfig(std_init=-0.1), ValueError, ["evolve.search.std_init", "must be > 0", "-0.1"]),
    ("elite fraction outside (0, 1] `evolve.search.elite_ratio=1.5`",
     lambda tmp: cfgs.SearchConfig(elite_ratio=1.5), ValueError, ["evolve.search.elite_ratio", "(0, 1]", "1.5"]),
    ("negative operator weight `evolve.fitness.lambda_t=-0.1`",
     lambda tmp: cfgs.FitnessConfig(lambda_t=-0.1), ValueError, ["evolve.fitness.lambda_t", ">= 0", "'none'"]),
    ("negative gradient clip `train.grad_clip=-1`",
     lambda tmp: cfgs.load_config("demo_direct", ["train.grad_clip=-1"]), ValueError, ["train.grad_clip", ">= 0",
                                                                                   "0 turns clipping off"]),
    ("negative weight decay `train.weight_decay=-0.0005`",
     lambda tmp: cfgs.load_config("demo_direct", ["train.weight_decay=-0.0005"]), ValueError,
     ["train.weight_decay", ">= 0", "-0.0005"]),
    ("label smoothing outside [0, 1) `train.label_smoothing=1.0`",
     lambda tmp: cfgs.load_config("demo_direct", ["train.label_smoothing=1.0"]), ValueError,
     ["train.label_smoothing", "[0, 1)", "uniform"]),
    ("a search in which every individual diverged (here `evolve.evaluation.inject_nan` = the whole population)",
     search_all_diverged, FloatingPointError, ["every individual of the search's 1 generation(s) diverged",
                                              "would be the random wiring", "evolve.search.std_init", "inject_nan"]),
    ("a race in which every finalist diverged",
     race_all_diverged, ValueError, ["every race finalist diverged", "2 repeat(s)", "evolve.race.steps"]),
    ("energy of a synapse without a measured input density",
     energy_without_a_density, ValueError, ["no measured input density", "'readout'", "'stats' collection"]),
    ("unknown genome `evolve.allocation.genome=layers`",
     lambda tmp: cfgs.AllocationConfig(genome="layers").validate(), ValueError,
     ["evolve.allocation.genome", "'wiring'", "'allocation'", "'both'"]),
    ("unknown over-budget rule `evolve.allocation.over_budget=clip`",
     lambda tmp: cfgs.AllocationConfig(over_budget="clip").validate(), ValueError, ["'project'", "'penalty'"]),
    ("negative budget `evolve.allocation.budget=-1`",
     lambda tmp: cfgs.AllocationConfig(budget=-1).validate(), ValueError, ["evolve.allocation.budget", ">= 0", "0 means"]),
    ("negative budget penalty `evolve.allocation.penalty=-1`",
     lambda tmp: cfgs.AllocationConfig(penalty=-1.0).validate(), ValueError, ["evolve.allocation.penalty", ">= 0"]),
    ("negative maximum `evolve.allocation.max_genes=-2`",
     lambda tmp: cfgs.AllocationConfig(max_genes=-2).validate(), ValueError, ["evolve.allocation.max_genes", ">= 0"]),
    ("final variant `uniform` with the wiring genome",
     lambda tmp: cfgs.EvolveConfig(final_variants=("evolved", "uniform")).validate(), ValueError,
     ["'uniform'", "evolve.allocation.genome"]),
    ("allocation maximum below the model's genes `evolve.allocation.max_genes=2` with 4 genes",
     lambda tmp: _allocation_search(tmp, max_genes=2), ValueError, ["max_genes=2", "at least the model's genes (4)"]),
    ("allocation budget below one gene per rule and layer `evolve.allocation.budget=10`",
     lambda tmp: _allocation_search(tmp, budget=10), ValueError, ["budget=10", "one gene in each of 2 rules",
                                                                  "max_rules"]),
    ("allocation genome with `model.genetic.layer_genes` set",
     lambda tmp: _allocation_search(tmp, genetic=dict(layer_genes=(("fc1_dense", (2, 2)), ("readout", (2, 2))))),
     ValueError,
     ["layer_genes empty"]),
    ("misspelt config key `--set train.epoch=3`",
     lambda tmp: cfgs.load_config("demo_direct", ["train.epoch=3"]), KeyError, ["train.epoch", "train.epochs"]),
    ("malformed value `--set model.T=four`",
     lambda tmp: cfgs.load_config("demo_direct", ["model.T=four"]), ValueError, ["model.T", "four"]),
    ("unknown config name `--config demo_directt`",
     lambda tmp: cfgs.load_config("demo_directt"), ValueError, ["demo_directt", "demo_direct"]),
    ("config file with a syntax error",
     corrupt_config_file, ValueError, ["broken.py"]),
    ("images without a channel axis `[B, H, W]`",
     model_images_without_channels, ValueError, ["[B, H, W, C]", "(2, 32, 32)"]),
    ("uint8 images given to the model",
     model_uint8_images, ValueError, ["float", "normalize", "uint8"]),
    ("missing data folder", missing_folder, D.DataError, ["no such file or directory"]),
    ("data folder without class folders", empty_folder, D.DataError, ["class"]),
    ("class folder with no images", class_without_images, D.DataError, ["bee", "no images"]),
    ("unreadable image", unreadable_image, D.DataError, ["0.png", "cannot decode"]),
    ("truncated `.tar.gz`", truncated_archive, D.DataError, ["truncated or corrupt"]),
    ("archive with a wrong sha256", wrong_sha256, D.DataError, ["sha256", "does not match"]),
    ("workdir holding a run of another config", checkpoint_of_another_config, ValueError,
     ["different config", "model.T"]),
]


@pytest.mark.parametrize("description,fn,exc_type,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(description, fn, exc_type, fragments, tmp_path):
    with pytest.raises(exc_type) as info:
        fn(tmp_path)
    message = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


TABLE = REPO / "docs" / "BAD_INPUTS.md"


def test_the_bad_input_table_lists_every_case_and_the_readme_links_it():
    rows = [line for line in TABLE.read_text().splitlines() if line.startswith("| ")]
    described = [line.split(" | ")[0].removeprefix("| ") for line in rows[1:]]  # after the header
    missing = [c[0] for c in CASES if c[0] not in described]
    assert not missing, f"{TABLE.name}'s table lacks: {missing} (python tests/test_bad_inputs.py prints it)"
    stale = [d for d in described if d not in {c[0] for c in CASES}]
    assert not stale, f"{TABLE.name}'s table lists inputs no case tests: {stale}"
    assert len(CASES) >= 20
    assert "docs/BAD_INPUTS.md" in (REPO / "README.md").read_text()


if __name__ == "__main__":  # print docs/BAD_INPUTS.md's table from the current messages
    import tempfile

    print("| input | what the user sees |\n|---|---|")
    for description, fn, exc_type, _ in CASES:
        with tempfile.TemporaryDirectory() as d:
            kind, message = "-", "(no error!)"
            try:
                fn(pathlib.Path(d))
            except exc_type as e:
                kind, message = type(e).__name__, (e.args[0] if isinstance(e, KeyError) else str(e))
        message = message.replace(str(pathlib.Path(d)), "…").replace(str(pathlib.Path.cwd()), "…")
        message = message.replace(str(REPO), "…").replace("|", "\\|").replace("\n", " ")
        print(f"| {description} | `{kind}`: {message} |")
    sys.exit(0)
