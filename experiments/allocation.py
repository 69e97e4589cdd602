"""Issue 26: evolve the encoding's allocation (genes per rule and rules, per layer) under
a parameter budget, and measure it against the uniform and a random allocation at the
same budget (DESIGN 1.3, ``evolve.allocation``), on the issue 11 study's recipe.

    python experiments/allocation.py sample   --budget 54 --n 14 --seed 0        # random allocations at the budget
    python experiments/allocation.py fitness  --budget 54 --horizons 10 40 160   # the search's fitness of each
    python experiments/allocation.py train    --budget 54                        # each trained, study recipe
    python experiments/allocation.py spearman --budget 54                        # rank correlation per horizon
    python experiments/allocation.py structure --budget 54                       # which layer's genes go with accuracy
    python experiments/allocation.py budget-choice --budget 54 --seed 3          # project vs penalty, on validation
    python experiments/allocation.py study    --budget 54 --seeds 0 1 2          # evolved | uniform | random
    python experiments/allocation.py surrogate --budget 54                       # evolved on a fit to the trained samples
    python experiments/allocation.py surrogate-study --budget 54 --seeds 0 1 2   # that allocation, trained per seed
    python experiments/allocation.py direct   --budget 82 --seeds 0 1 2          # direct weights, same recipe and seeds
    python experiments/allocation.py report                                      # experiments/results/allocation.json

Budgets (``--budget``, the study's compression in percent, each in the mode of its
baseline row of ``experiments/cifar10_study.py``): ``54`` = ``position_50_r2`` (52,550
parameters; ``--mode neuron``: ``neuron_50_r2``, 51,146), ``82`` = ``neuron_80_r2``
(20,426, neuron mode). The baseline row is the **uniform** allocation, and its count is
the budget (``evolve.allocation.budget=0``); the searched network is built at twice the
row's genes (``max_genes``) and its rules. Every run uses the study's recipe (10,000
training images, a 5,000-image validation split outside them, 8 epochs, convnet_s; the
test split read once per run at its end) and resumes: a subcommand skips what its files
hold, trainings resume from their checkpoints under ``--runs``. Choices (the horizon, the
budget rule) are made on validation (DESIGN 1.6), at budget 54, and every budget uses them
(``study`` stops if one is not made yet). ``budget-choice`` runs at seed 3, outside the
study's seeds: the chosen rule's search, reused at a study seed, would bring the better of
two trainings into that seed's evolved arm. Every subcommand takes ``--smoke``: generated 8x8 images, the config shrunk to a CPU
smoke test on an MLP (tests/test_allocation_experiment.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import shlex
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import cifar10_study as S  # noqa: E402

from gsnn import config as cfgs  # noqa: E402
from gsnn import data as D  # noqa: E402
from gsnn import evolution as EV  # noqa: E402
from gsnn import training as TR  # noqa: E402
from gsnn.analysis import plots  # noqa: E402
from gsnn.analysis.stats import paired_difference, verdict  # noqa: E402
from gsnn.evolution import allocation as A  # noqa: E402
from gsnn.evolution import budget as BG  # noqa: E402
from gsnn.evolution import surrogate as SU  # noqa: E402
from gsnn.evolution.signal import spearman as spearman_rho  # noqa: E402
from gsnn.nn import networks as M  # noqa: E402
from gsnn.runtime.provenance import provenance  # noqa: E402

RESULTS = pathlib.Path("experiments/results/allocation")
OUT = pathlib.Path("experiments/results/allocation.json")
RUNS = pathlib.Path("runs/allocation")
#: budget label -> mode -> the study's baseline row (the uniform allocation) and its count
BASELINES = {"54": {"position": "position_50_r2", "neuron": "neuron_50_r2"}, "82": {"neuron": "neuron_80_r2"}}
ISSUE_PARAMS = {"position_50_r2": 52_550, "neuron_50_r2": 51_146, "neuron_80_r2": 20_426}
ARMS = ("evolved", "uniform", "random")
#: The arm evolved on the surrogate fitted to the trained samples (``surrogate``), trained
#: by ``surrogate-study`` apart from the study's search and paired with its uniform arm
SURROGATE_ARM = "surrogate"
#: the folder of the direct net's records (``direct``), shared by every budget
DIRECT_TAG = "direct"
#: the budget folder whose `spearman` and `budget-choice` choose the horizon and the
#: over-budget rule for every budget (both on validation)
CHOICE_TAG = "b54_position"
STUDY_SEEDS = (0, 1, 2)
CHOICE_SEED = 3  # budget-choice's: outside the study's seeds
#: The horizon when no measured one ranks allocations (no interval above 0): fixed on
#: 2026-12-06, before K = 320 was measured, as the longest horizon whose search fits the
#: study's compute (a K = 320 search costs twice as much), not chosen on validation
FALLBACK_HORIZON = 160
#: The search (issue 13's settings with signal, on the allocation genome): CMA-ES, 8 x 6,
#: minus the validation loss on 2,000 held-out images after K inner steps of 32, one base
#: draw; the operators on G see the maximal G and are off.
SEARCH = ["evolve.search.strategy=cma_es", "evolve.search.population=8", "evolve.search.generations=6",
          "evolve.search.std_init=0.5", "evolve.inner.batch=32", "evolve.inner.val_size=2000", "evolve.fixed_base=true",
          "evolve.fitness.metric=val_loss", "evolve.fitness.spatial_operator=none",
          "evolve.fitness.temporal_operator=none", "evolve.fitness.lambda_s=0.0", "evolve.fitness.lambda_t=0.0",
          "evolve.fitness.signal_every=0", "evolve.allocation.genome=allocation", "evolve.allocation.budget=0"]
SMOKE_SHAPE = (8, 8, 3)


def tag(args) -> str:
    return f"b{args.budget}_{args.mode}"


def baseline(args) -> str:
    modes = BASELINES[args.budget]
    if args.mode not in modes:
        raise SystemExit(f"budget {args.budget} has a baseline in mode(s) {sorted(modes)}, not {args.mode!r}")
    return modes[args.mode]


def overrides(args, seed: int, extra: list[str] = ()) -> list[str]:
    """The ``--set`` list of a run: the baseline row at the study's budget, the search
    at twice its genes, then ``extra``."""
    row = baseline(args)
    genes = int(next(o for o in S.VARIANTS[row] if o.startswith("model.genetic.genes=")).split("=")[1])
    return (S.VARIANTS[row] + S.BUDGET + SEARCH + [f"evolve.allocation.max_genes={2 * genes}",
                                                   f"seed={seed}", f"name=allocation_{tag(args)}_s{seed}"] + list(extra))


def config(args, seed: int, extra: list[str] = ()) -> cfgs.Config:
    cfg = cfgs.load_config(S.BASE, overrides(args, seed, extra))
    if args.smoke:  # after the shrink: the extra settings (horizon, finals) are kept
        cfg = cfgs.shrink_for_smoke(cfg)
        cfg = cfgs.replace(cfg, **{"evolve.search.population": 4, "evolve.search.generations": 1,
                                   "evolve.inner.val_size": 16, "evolve.inner.batch": 8,
                                   "evolve.evaluation.shard": False, "model.arch": "mlp",
                                   "model.hidden": (16,)})  # an MLP compiles in a fraction of a convnet's time
        cfg = cfgs.apply_overrides(cfg, [o for o in extra if "inner.steps" not in o])  # K: shrunk to <= 2
    return cfg.validate()


def command(args, seed: int, extra: list[str], verb: str) -> str:
    quoted = " ".join(shlex.quote(o) for o in overrides(args, seed, extra))
    return f"gsnn {verb} --config {S.BASE} --set {quoted}" + (" smoke=true" if args.smoke else "")


def smoke_dataset(seed: int = 0) -> D.ArrayDataset:
    """Generated data for ``--smoke``: 10 classes of 8x8 images, each class a noisy
    colour pattern (learnable, so the accuracies differ), with a validation split."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(40, 215, (10,) + SMOKE_SHAPE)

    def draw(n):
        y = np.arange(n) % 10
        x = np.clip(means[y] + rng.normal(0, 40, (n,) + SMOKE_SHAPE), 0, 255).astype(np.uint8)
        return x, y.astype(np.int32)

    (xt, yt), (xs, ys), (xv, yv) = draw(160), draw(40), draw(40)
    return D.ArrayDataset("smoke", xt, yt, xs, ys, tuple(f"c{i}" for i in range(10)), xv, yv)


def dataset(args, seed: int):
    return smoke_dataset(seed) if args.smoke else TR.load_data(config(args, seed))


def search_of(cfg: cfgs.Config, shape) -> BG.Search:
    model = M.build_model(BG.search_model_config(cfg))
    return BG.make_search(cfg, A.make_layout(model.cfg.genetic, *M.describe(model, shape)))


def shape_of(args) -> tuple:
    return SMOKE_SHAPE if args.smoke else (32, 32, 3)


def folder(args) -> pathlib.Path:
    out = pathlib.Path(args.results) / tag(args)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write(path: pathlib.Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, default=float))
    print(f"wrote {path}", flush=True)


def allocation_of(rec: dict, layout: A.Layout) -> A.Allocation:
    """A stored allocation (``counts``: per layer the genes of each active rule)."""
    return A.from_counts([tuple(c) for c in rec["counts"]], layout)


# --------------------------------------------------------------------------------------
# sample, fitness, train, spearman
# --------------------------------------------------------------------------------------


def cmd_sample(args) -> int:
    path = folder(args) / "samples.json"
    if path.exists():
        print(f"{path} exists; delete it to draw again", flush=True)
        return 0
    cfg = config(args, args.seed)
    search = search_of(cfg, shape_of(args))
    if not args.smoke and search.budget != ISSUE_PARAMS[baseline(args)]:
        raise SystemExit(f"the baseline {baseline(args)} counts {search.budget:,} parameters, not the study's "
                         f"{ISSUE_PARAMS[baseline(args)]:,}: the study's config changed")
    key = jax.random.fold_in(jax.random.key(args.seed), 26)
    samples, seen, draw = [], set(), 0
    while len(samples) < args.n:  # distinct allocations: a repeated one would count twice in the correlation
        if draw >= 100 * args.n:
            raise SystemExit(f"found only {len(samples)} distinct allocations in {draw} draws; lower --n")
        d = BG.describe(BG.random_allocation(jax.random.fold_in(key, draw), search), search)
        draw += 1
        if str(d["counts"]) not in seen:
            seen.add(str(d["counts"]))
            samples.append(dict(index=len(samples), draw=draw - 1, **d))
    write(path, dict(budget=search.budget, baseline=baseline(args), seed=args.seed, max_genes=search.layout.genes,
                     max_rules=search.layout.rules, samples=samples, provenance=provenance()))
    return 0


def _samples(args) -> list[dict]:
    path = folder(args) / "samples.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `sample` first")
    return json.loads(path.read_text())["samples"]


def cmd_fitness(args) -> int:
    """Each sample's fitness at each horizon ``K``: the search's own evaluation
    (:func:`gsnn.evolution.make_problem`, the generation-0 minibatches and key of a run
    of seed ``--seed``, the last generation's lambdas), the whole sample one population."""
    samples, ds = _samples(args), dataset(args, args.seed)
    for k in args.horizons:
        path = folder(args) / f"fitness_K{k}.json"
        if path.exists():
            print(f"skip K={k} (done)", flush=True)
            continue
        cfg = config(args, args.seed, [f"evolve.inner.steps={k}", f"evolve.search.population={len(samples)}"])
        if args.smoke:
            cfg = cfgs.replace(cfg, **{"evolve.inner.steps": k})
        t0 = time.perf_counter()
        problem = EV.make_problem(cfg, ds)
        genomes = {BG.KEY: jnp.stack([A.to_genome(allocation_of(s, problem.search.layout), problem.search.layout) for s in samples])}
        xb, yb = EV.generation_batches(problem, 0)
        out = jax.device_get(problem.evaluate_population(
            genomes, jax.random.fold_in(jax.random.key(args.seed), 23), jnp.asarray(xb), jnp.asarray(yb),
            jnp.asarray(cfg.evolve.search.generations - 1, jnp.int32)))
        rows = [dict(index=s["index"], params=int(out["params"][i]),
                     **{t: float(out[t][i]) for t in ("fitness", "val_loss", "val_accuracy")})
                for i, s in enumerate(samples)]
        write(path, dict(horizon=k, rows=rows, seconds=time.perf_counter() - t0,
                         command=command(args, args.seed, [f"evolve.inner.steps={k}"], "evolve"), provenance=provenance()))
    return 0


def train_allocation(args, seed: int, counts: list, name: str, ds) -> dict:
    """One allocation trained with the study's recipe as its directly built network."""
    cfg = config(args, seed)
    search = search_of(cfg, ds.image_shape)
    alloc = allocation_of(dict(counts=counts), search.layout)
    vcfg = dataclasses.replace(cfg, name=f"{cfg.name}_{name}", model=BG.model_config(cfg, alloc, search))
    g = vcfg.model.genetic
    extra = [f"model.genetic.genes={g.genes}", f"model.genetic.rules={g.rules}"] + (
        [f"model.genetic.layer_genes={g.layer_genes!r}".replace(" ", "")] if g.layer_genes else [])
    rec = TR.result_record(TR.train_and_evaluate(vcfg, pathlib.Path(args.runs) / tag(args) / name, dataset=ds,
                                                 progress=not args.smoke))
    rec.update(counts=counts, command=command(args, seed, extra, "train"))
    return rec


def trained_path(args, index: int, seed: int) -> pathlib.Path:
    """``train/sample{i}.json`` for seed 0 (the first measurement), ``sample{i}_s{seed}.json``
    for a repeat at another seed."""
    return folder(args) / "train" / (f"sample{index}.json" if seed == 0 else f"sample{index}_s{seed}.json")


def cmd_train(args) -> int:
    """Each sample trained at ``--seed``: at seed 0 every sample, at another seed (a repeat,
    for the trained accuracy's seed-to-seed reliability) each distinct allocation once.
    ``--samples`` trains only those indices, in the order given: two processes (or
    machines) split the work by taking it from either end, each skipping a record the
    folder holds by the time it reaches it."""
    samples, ds = _samples(args), None
    (folder(args) / "train").mkdir(exist_ok=True)
    keep = set(distinct_samples(samples)[0]) if args.seed != 0 else {s["index"] for s in samples}
    if args.samples is not None:
        by_index = {s["index"]: s for s in samples}
        unknown = sorted(set(args.samples) - set(by_index))
        if unknown:
            raise SystemExit(f"--samples {unknown}: not in {folder(args) / 'samples.json'} (indices {sorted(by_index)})")
        samples = [by_index[i] for i in args.samples]
    for s in samples:
        path = trained_path(args, s["index"], args.seed)
        if path.exists() or s["index"] not in keep:
            continue
        ds = ds or dataset(args, args.seed)
        rec = train_allocation(args, args.seed, s["counts"], f"sample{s['index']}_s{args.seed}", ds)
        write(path, dict(rec, index=s["index"], seed=args.seed))
    return 0


def fisher_interval(rho: float, n: int) -> list[float] | None:
    """95% interval of a Spearman rho: Fisher z with the Bonett-Wright standard error
    ``sqrt((1 + rho^2 / 2) / (n - 3))``; ``None`` for ``n < 4`` or an undefined rho."""
    if n < 4 or not math.isfinite(rho):
        return None
    z, se = math.atanh(max(min(rho, 0.999999), -0.999999)), math.sqrt((1 + rho * rho / 2) / (n - 3))
    return [math.tanh(z - 1.959964 * se), math.tanh(z + 1.959964 * se)]


def ci_text(c: list[float] | None) -> str:
    return "-" if c is None else f"[{c[0]:+.2f}, {c[1]:+.2f}]"


def distinct_samples(samples: list[dict]) -> tuple[list[int], list[int]]:
    """The indices of the first sample of each distinct allocation, and of the repeats
    (samples drawn before the sampler kept them distinct may repeat one: a repeat trains
    to the same accuracy and would count twice in the correlation)."""
    first, repeats = {}, []
    for s in samples:
        key = str(s["counts"])
        if key in first:
            repeats.append(s["index"])
        else:
            first[key] = s["index"]
    return sorted(first.values()), repeats


def trained_accuracies(args) -> dict[int, dict[int, float]]:
    """``{sample index: {seed: final validation accuracy}}`` of the distinct samples trained
    (the seed read from the file name, :func:`trained_path`)."""
    keep = set(distinct_samples(_samples(args))[0])
    out: dict[int, dict[int, float]] = {}
    for p in sorted((folder(args) / "train").glob("sample*.json")):
        index, _, seed = p.stem[len("sample"):].partition("_s")
        if int(index) in keep:
            out.setdefault(int(index), {})[int(seed or 0)] = json.loads(p.read_text())["val_accuracy"]
    return out


def reliability(trained: dict[int, dict[int, float]]) -> dict | None:
    """How much of the spread of trained accuracy across allocations is the allocation's
    and how much one training's noise, from the allocations trained at seeds 0 and 1
    (model ``a[i, s] = mu[i] + e[i, s]``, independent noise of sd ``sigma``; a seed also
    redraws the training subset and validation split, so ``sigma`` includes them):
    ``noise_sd_points`` = ``sd(a0 - a1) / sqrt(2)`` (one training's sigma),
    ``between_allocation_sd_points`` = ``sqrt(max(0, cov(a0, a1)))``, their Spearman and
    Pearson ``r`` across allocations (the test-retest reliability ``R1``, estimated by
    ``r``), and the ceilings it puts on any fitness's Pearson correlation with the
    trained accuracy: ``sqrt(R1)`` against one training, ``sqrt(2 R1 / (1 + R1))``
    against the mean of two (Spearman-Brown). Points; ``None`` below 4 allocations."""
    both = sorted(i for i, a in trained.items() if 0 in a and 1 in a)
    if len(both) < 4:
        return None
    a0, a1 = (np.array([trained[i][s] for i in both]) * 100 for s in (0, 1))
    rho, r = spearman_rho(list(a0), list(a1)), float(np.corrcoef(a0, a1)[0, 1])
    r1 = max(r, 0.0)
    return dict(n=len(both), seeds=[0, 1], spearman=rho, spearman_ci95=fisher_interval(rho, len(both)), pearson=r,
                noise_sd_points=float(np.std(a0 - a1, ddof=1) / math.sqrt(2)),
                between_allocation_sd_points=math.sqrt(max(0.0, float(np.cov(a0, a1, ddof=1)[0, 1]))),
                per_seed_sd_points=[float(np.std(a, ddof=1)) for a in (a0, a1)],
                ceiling_one_training=math.sqrt(r1), ceiling_mean_of_two=math.sqrt(2 * r1 / (1 + r1)))


def seeds_and_means(trained: dict[int, dict[int, float]]) -> tuple[list[int], dict[int, float]]:
    """The seeds trained, and each allocation's mean accuracy over them (only the
    allocations trained at every one of them)."""
    seeds = sorted({s for a in trained.values() for s in a})
    return seeds, {i: float(np.mean([a[s] for s in seeds])) for i, a in trained.items() if all(s in a for s in seeds)}


def spearman_table(args) -> dict:
    """Per horizon ``K``: Spearman rho (and 95% interval) of the fitness against the trained
    validation accuracy, at seed 0 (``rho``, all distinct samples) and against the mean
    over the seeds every allocation has (``rho_mean``, when a repeat seed exists).

    The horizon chosen: among those whose interval (of ``rho_mean`` once every distinct
    allocation has every seed, else ``rho``) lies above 0, the highest rho; if none,
    :data:`FALLBACK_HORIZON` (when measured), which ``chosen_because`` says."""
    repeats = distinct_samples(_samples(args))[1]
    trained = trained_accuracies(args)
    seeds, complete = seeds_and_means(trained)
    rows = []
    for p in sorted(folder(args).glob("fitness_K*.json"), key=lambda p: int(p.stem[9:])):
        fit = {r["index"]: r["fitness"] for r in json.loads(p.read_text())["rows"]}
        row = dict(horizon=int(p.stem[9:]), seconds=json.loads(p.read_text()).get("seconds"))
        for name, target in (("", {i: a[0] for i, a in trained.items() if 0 in a}), ("_mean", complete)):
            if name and len(seeds) < 2:
                continue
            common = sorted(set(fit) & set(target))
            rho = spearman_rho([fit[i] for i in common], [target[i] for i in common]) if len(common) > 1 else float("nan")
            row.update({f"rho{name}": rho, f"n{name}": len(common), f"ci95{name}": fisher_interval(rho, len(common)),
                        f"points{name}": [[i, fit[i], target[i]] for i in common]})  # index, fitness, accuracy
        rows.append(row)
    repeated = len(seeds) >= 2 and len(complete) == len(trained)
    key = "_mean" if repeated else ""
    carried = [r for r in rows if r[f"ci95{key}"] is not None and r[f"ci95{key}"][0] > 0]
    if carried:
        best = max(carried, key=lambda r: r[f"rho{key}"])["horizon"]
        because = f"the highest rho{key} among the horizons whose 95% interval lies above 0"
    else:
        n = rows[0][f"n{key}"] if rows else 0
        best = FALLBACK_HORIZON if any(r["horizon"] == FALLBACK_HORIZON for r in rows) else None
        because = (f"at n = {n} no horizon's rho{key} can be told apart from 0 (every 95% interval reaches it): "
                   f"the fixed fallback K = {FALLBACK_HORIZON}, chosen for the study's compute, not on validation"
                   + ("" if best else " (not measured yet)"))
    if len(seeds) >= 2 and not repeated:
        because += f"; the repeat at seeds {seeds[1:]} is partial ({len(complete)} of {len(trained)}): seed 0 only"
    return dict(horizons=rows, chosen_horizon=best, chosen_because=because, seeds=seeds, target_key=key,
                against="final validation accuracy (study recipe); rho_mean: its mean over `seeds`",
                reliability=reliability(trained), repeated_allocations_left_out=repeats,
                interval="Fisher z of rho with the Bonett-Wright standard error sqrt((1 + rho^2/2) / (n - 3))")


def cmd_spearman(args) -> int:
    table = spearman_table(args)
    for r in table["horizons"]:
        print(f"K={r['horizon']:4d}: rho {r['rho']:+.3f} (n {r['n']}, 95% CI {ci_text(r['ci95'])})"
              + (f"; against the mean over seeds {table['seeds']}: {r['rho_mean']:+.3f} (n {r['n_mean']}, "
                 f"95% CI {ci_text(r['ci95_mean'])})" if "rho_mean" in r else ""), flush=True)
    if table["reliability"]:
        rel = table["reliability"]
        print(f"seed 0 vs 1 over {rel['n']} allocations: rho {rel['spearman']:+.3f}, r {rel['pearson']:+.3f}; "
              f"one training's noise sd {rel['noise_sd_points']:.2f} points, between allocations "
              f"{rel['between_allocation_sd_points']:.2f}; ceiling on a fitness's r: {rel['ceiling_one_training']:.2f} "
              f"(one training), {rel['ceiling_mean_of_two']:.2f} (mean of two)", flush=True)
    print(f"chosen horizon: {table['chosen_horizon']} ({table['chosen_because']})", flush=True)
    write(folder(args) / "spearman.json", table)
    key = table["target_key"]
    seeds = table["seeds"] if key else [0]
    panels = [dict(horizon=r["horizon"], rho=r[f"rho{key}"], ci95=r[f"ci95{key}"],
                   fitness=[f for _, f, _ in r[f"points{key}"]], trained=[100 * a for _, _, a in r[f"points{key}"]])
              for r in table["horizons"]]
    if panels:
        png = plots.plot_fitness_vs_trained(
            panels, folder(args) / "spearman.png", reference=uniform_val_accuracy(args, seeds),
            reference_label=f"{baseline(args)} (uniform), seeds {seeds}", xlabel="fitness (minus validation loss)",
            ylabel="trained validation accuracy (%)" + (f", mean of seeds {seeds}" if key else ""))
        print(f"wrote {png}", flush=True)
    return 0


def structure_features(samples: list[dict]) -> dict[str, dict[int, int]]:
    """Per encoded layer (in call order), the allocation's active genes (summed over its
    active rules) and active rules: ``{"<layer> genes" | "<layer> rules": {sample index:
    count}}``."""
    out: dict[str, dict[int, int]] = {}
    for s in samples:
        for name, layer in s["layers"].items():
            out.setdefault(f"{name} genes", {})[s["index"]] = int(sum(layer["genes"]))
            out.setdefault(f"{name} rules", {})[s["index"]] = int(layer["rules"])
    return out


def structure_table(args) -> dict:
    """Which part of an allocation goes with the trained accuracy, and whether the fitness
    sees it: per feature (:func:`structure_features`), the Spearman rho (95% interval) of
    the feature against the trained validation accuracy at each seed trained (and their
    mean, where every allocation has every seed), and against the fitness at each horizon.
    Distinct allocations only. The features are not chosen in advance: an interval here
    is descriptive (six features per budget), a repeat at a new seed is the test."""
    keep = distinct_samples(_samples(args))[0]
    feats = structure_features([s for s in _samples(args) if s["index"] in keep])
    trained = trained_accuracies(args)
    seeds = sorted({s for a in trained.values() for s in a})
    targets = {f"trained_s{s}": {i: a[s] for i, a in trained.items() if s in a} for s in seeds}
    if len(seeds) > 1:
        targets["trained_mean"] = {i: float(np.mean(list(a.values()))) for i, a in trained.items() if len(a) == len(seeds)}
    for p in sorted(folder(args).glob("fitness_K*.json"), key=lambda p: int(p.stem[9:])):
        targets[f"fitness_K{p.stem[9:]}"] = {r["index"]: r["fitness"] for r in json.loads(p.read_text())["rows"]}
    rows = []
    for name, feat in feats.items():
        row = dict(feature=name)
        for tname, target in targets.items():
            common = sorted(set(feat) & set(target))
            rho = spearman_rho([feat[i] for i in common], [target[i] for i in common]) if len(common) > 3 else float("nan")
            row[tname] = dict(rho=rho, n=len(common), ci95=fisher_interval(rho, len(common)))
        rows.append(row)
    return dict(rows=rows, features={k: {str(i): v for i, v in f.items()} for k, f in feats.items()},
                trained={str(i): {str(s): v for s, v in a.items()} for i, a in trained.items()}, seeds=seeds,
                note="rho of each feature against each target; features picked after seeing seed 0, so a repeat "
                     "seed (trained_s1) is the check, not these intervals")


def cmd_structure(args) -> int:
    table = structure_table(args)
    targets = [k for k in table["rows"][0] if k != "feature"] if table["rows"] else []
    print("feature".ljust(20) + "".join(t.rjust(16) for t in targets), flush=True)
    for r in table["rows"]:
        print(r["feature"].ljust(20) + "".join(f"{r[t]['rho']:+16.2f}" for t in targets), flush=True)
    write(folder(args) / "structure.json", table)
    layers = [r["feature"] for r in table["rows"] if r["feature"].endswith(" genes")]
    seeds = table["seeds"]
    key = "trained_mean" if "trained_mean" in targets else "trained_s0"
    if layers and key in targets:
        acc = {i: float(np.mean(list(a.values()))) if key == "trained_mean" else a.get(0)
               for i, a in trained_accuracies(args).items()}
        search = search_of(config(args, 0), shape_of(args))
        uniform = structure_features([dict(index=0, **BG.describe(search.uniform, search))])  # the star on the line
        panels = []
        for name in layers:
            feat = {int(i): v for i, v in table["features"][name].items()}
            common = sorted(i for i in feat if acc.get(i) is not None)
            row = next(r for r in table["rows"] if r["feature"] == name)
            panels.append(dict(label=name, rho=row[key]["rho"], ci95=row[key]["ci95"], reference_x=uniform[name][0],
                               fitness=[feat[i] for i in common], trained=[100 * acc[i] for i in common]))
        png = plots.plot_fitness_vs_trained(
            panels, folder(args) / "structure.png", reference=uniform_val_accuracy(args, seeds if key == "trained_mean" else [0]),
            reference_label=f"{baseline(args)} (uniform)", xlabel="active genes in the layer (all rules)",
            ylabel="trained validation accuracy (%)" + (f", mean of seeds {seeds}" if key == "trained_mean" else ""))
        print(f"wrote {png}", flush=True)
    return 0


def uniform_val_accuracy(args, seeds: list[int]) -> float | None:
    """The uniform row's validation accuracy (percent, mean over ``seeds``) in the issue 11
    study's results, or ``None`` where that file or those seeds are missing (--smoke)."""
    path = pathlib.Path("experiments/results/cifar10_convnet_s.json")
    row = next((r for r in json.loads(path.read_text()) if r["variant"] == baseline(args)), None) \
        if path.exists() and not args.smoke else None
    vals = dict(zip(row["val_seeds"], row["val_accuracies"])) if row else {}
    return 100 * float(np.mean([vals[s] for s in seeds])) if seeds and all(s in vals for s in seeds) else None


def chosen(args, name: str, key: str):
    """A choice made on validation (``spearman.json``'s horizon, ``budget_choice.json``'s
    over-budget rule): this budget's own file if it has one, else the one of
    :data:`CHOICE_TAG`, where the study makes its choices for every budget; ``None``
    before it is made."""
    for path in (folder(args) / name, pathlib.Path(args.results) / CHOICE_TAG / name):
        if path.exists():
            return json.loads(path.read_text())[key]
    return None


def horizon(args) -> int:
    """The search's horizon K: ``--inner-steps``, else the one ``spearman`` chose."""
    k = args.inner_steps or chosen(args, "spearman.json", "chosen_horizon")
    if k is None:
        raise SystemExit(f"no horizon chosen yet: run `spearman` (budget 54) or pass --inner-steps "
                         f"(looked in {folder(args)} and {pathlib.Path(args.results) / CHOICE_TAG})")
    return k


# --------------------------------------------------------------------------------------
# surrogate, surrogate-study
# --------------------------------------------------------------------------------------


def surrogate_data(args, search: BG.Search) -> dict:
    """What the surrogate is fitted to: the distinct trained samples' validation accuracy
    (percent; the mean over the seeds trained, each allocation at every one of them), and
    the uniform row at the same seeds where the issue 11 study holds it (it is an
    allocation trained with the same recipe). ``x [n, F]``, ``y [n]``, ``labels``."""
    samples = {s["index"]: s for s in _samples(args)}
    trained = trained_accuracies(args)
    seeds, means = seeds_and_means(trained)
    if len(means) != len(trained):
        raise SystemExit(f"the repeat at seeds {seeds[1:]} is partial ({len(means)} of {len(trained)} allocations "
                         f"trained at every seed): finish `train --seed` first, so the fit uses each allocation's mean")
    if len(means) < 4:
        raise SystemExit(f"the surrogate needs at least 4 trained allocations; {len(means)} are: run `train` first")
    ids = sorted(means)
    x = [np.asarray(SU.features(allocation_of(samples[i], search.layout))) for i in ids]
    y, labels = [100 * means[i] for i in ids], [f"sample{i}" for i in ids]
    uni = uniform_val_accuracy(args, seeds)
    if uni is not None:
        x.append(np.asarray(SU.features(search.uniform)))
        y.append(uni)
        labels.append(baseline(args))
    seconds = sum(e["epoch_seconds"] for p in (folder(args) / "train").glob("sample*.json")
                  for e in json.loads(p.read_text())["history"])
    return dict(x=np.array(x), y=np.array(y), labels=labels, seeds=seeds, training_seconds=seconds)


def cmd_surrogate(args) -> int:
    """Fit the surrogate (:mod:`gsnn.evolution.surrogate`) to the trained samples, measure
    how it ranks an allocation it has not seen (nested leave-one-out Spearman rho with its
    interval: the number ``spearman`` gives each horizon), and evolve the allocation on it
    (CMA-ES, 32 x 100, projected onto the budget, inside the samples' range). Writes
    ``surrogate.json`` and ``surrogate.png`` (the leave-one-out predictions against the
    trained accuracy). Everything it fits and chooses is validation accuracy."""
    path = folder(args) / "surrogate.json"
    if path.exists():
        print(f"{path} exists; delete it to fit again", flush=True)
        return 0
    search = search_of(config(args, 0), shape_of(args))
    data = surrogate_data(args, search)
    x, y, names = data["x"], data["y"], SU.feature_names(search.layout)
    loo = SU.nested_loo_predictions(x, y)
    rho = spearman_rho(list(loo), list(y))
    lam = SU.choose_lambda(x, y)
    model = SU.fit_ridge(x, y, lam)
    box = SU.box_of(x, model)
    t0 = time.perf_counter()
    best, history = SU.evolve_on_surrogate(search.layout, search.budget, model, box, search.uniform,
                                           jax.random.fold_in(jax.random.key(0), 26))
    seconds = time.perf_counter() - t0
    found = BG.describe(best, search)
    predicted = float(SU.predict(model, SU.features(best)))
    uniform_pred = float(SU.predict(model, SU.features(search.uniform)))
    print(f"surrogate on {len(y)} trained allocations (seeds {data['seeds']}): nested leave-one-out rho {rho:+.3f} "
          f"{ci_text(fisher_interval(rho, len(y)))}, rmse {np.sqrt(np.mean((loo - y) ** 2)):.2f} points; lam {lam}", flush=True)
    print(f"evolved on it: {found['counts']} ({found['params']:,} parameters of {search.budget:,}), predicted "
          f"{predicted:.2f}% against the uniform allocation's {uniform_pred:.2f}% ({seconds:.1f} s)", flush=True)
    write(path, dict(
        seeds=data["seeds"], n=len(y), features=names, lam=lam, lam_grid=list(SU.LAMBDAS),
        weights=dict(zip(names, model.weights.tolist())), intercept=model.intercept,
        box=dict(lo=dict(zip(names, box.lo.tolist())), hi=dict(zip(names, box.hi.tolist()))),
        points=[dict(label=lab, features=xi.tolist(), trained=yi, loo_prediction=pi)
                for lab, xi, yi, pi in zip(data["labels"], x, y, loo)],
        loo=dict(rho=rho, ci95=fisher_interval(rho, len(y)), rmse_points=float(np.sqrt(np.mean((loo - y) ** 2))),
                 how="each allocation predicted by the model fitted on the others, its lam chosen on them alone"),
        found=found, predicted=predicted, uniform_predicted=uniform_pred, history=history, search_seconds=seconds,
        sample_training_seconds=data["training_seconds"],
        selected_on="validation accuracy of the trained samples (and the uniform row), study recipe",
        command=f"python experiments/allocation.py surrogate --budget {args.budget} --mode {args.mode}"
                + (" --smoke" if args.smoke else ""), provenance=provenance()))
    uni = uniform_val_accuracy(args, data["seeds"])
    png = plots.plot_fitness_vs_trained(
        [dict(label="surrogate (nested leave-one-out)", rho=rho, ci95=fisher_interval(rho, len(y)),
              fitness=list(loo), trained=list(y), reference_x=None if uni is None else float(loo[-1]))],
        folder(args) / "surrogate.png", reference=uni, reference_label=f"{baseline(args)} (uniform)",
        xlabel="predicted validation accuracy (%)",
        ylabel="trained validation accuracy (%)")
    print(f"wrote {png}", flush=True)
    return 0


def surrogate_path(args, seed: int) -> pathlib.Path:
    return folder(args) / "study" / f"{SURROGATE_ARM}_s{seed}.json"


def cmd_surrogate_study(args) -> int:
    """The allocation ``surrogate`` found, trained as its directly built network at each
    study seed (the study's recipe), paired in ``report`` with the study's uniform arm."""
    path = folder(args) / "surrogate.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `surrogate` first")
    sur = json.loads(path.read_text())
    (folder(args) / "study").mkdir(exist_ok=True)
    for seed in args.seeds:
        out = surrogate_path(args, seed)
        if out.exists():
            print(f"skip seed {seed} (done)", flush=True)
            continue
        rec = train_allocation(args, seed, sur["found"]["counts"], f"{SURROGATE_ARM}_s{seed}", dataset(args, seed))
        write(out, dict(rec, seed=seed, allocation=sur["found"], surrogate=dict(
            n=sur["n"], seeds=sur["seeds"], loo=sur["loo"], lam=sur["lam"], predicted=sur["predicted"],
            uniform_predicted=sur["uniform_predicted"], search_seconds=sur["search_seconds"],
            sample_training_seconds=sur["sample_training_seconds"])))
    return 0


# --------------------------------------------------------------------------------------
# budget-choice, study, report
# --------------------------------------------------------------------------------------


def evolve_run(args, seed: int, extra: list[str], name: str, ds) -> tuple[dict, str]:
    """One search and its finals (``extra`` sets them); its result and its command."""
    extra = [f"evolve.inner.steps={horizon(args)}"] + list(extra)
    cfg = dataclasses.replace(config(args, seed, extra), name=f"allocation_{tag(args)}_{name}")
    res = EV.run_evolution(cfg, pathlib.Path(args.runs) / tag(args) / name, dataset=ds, progress=not args.smoke)
    return res, command(args, seed, extra, "evolve")


def search_seconds(res: dict) -> float:
    return sum(g["seconds"] for g in res["generations"]) + (res["race"]["seconds"] if res.get("race") else 0.0)


def cmd_budget_choice(args) -> int:
    path = folder(args) / "budget_choice.json"
    if path.exists():
        print(f"{path} exists (chosen: {json.loads(path.read_text())['chosen']})", flush=True)
        return 0
    if args.seed in STUDY_SEEDS:
        raise SystemExit(f"budget-choice --seed {args.seed} is a study seed {STUDY_SEEDS}: the chosen rule's search "
                         f"there would be the better of two; use a seed outside them (default {CHOICE_SEED})")
    ds, rows = dataset(args, args.seed), []
    for rule in ("project", "penalty"):
        extra = [f"evolve.allocation.over_budget={rule}", "evolve.final_variants=('evolved',)"]
        res, cmd = evolve_run(args, args.seed, extra, f"budget_{rule}_s{args.seed}", ds)
        ev = res["allocation"]["evolved"]
        rows.append(dict(rule=rule, val_accuracy=res["final"]["evolved"]["val_accuracy"], params=ev["params"],
                         within_budget=ev["within_budget"], counts=ev["counts"], search_seconds=search_seconds(res),
                         command=cmd, final=res["final"]["evolved"], allocation=res["allocation"]))
    admissible = [r for r in rows if r["within_budget"]]
    if not admissible:
        raise SystemExit(f"neither rule's evolved allocation is within the budget: {[r['params'] for r in rows]}")
    chosen = max(admissible, key=lambda r: r["val_accuracy"])["rule"]
    write(path, dict(seed=args.seed, chosen=chosen, rows=rows, horizon=horizon(args),
                     selected_on="validation accuracy of the evolved allocation trained with the study recipe; "
                                 "an allocation over the budget is not admissible (equal-parameter comparison)",
                     provenance=provenance()))
    return 0


def over_budget_rule(args) -> str:
    """``--over-budget``, else the rule ``budget-choice`` chose."""
    rule = args.over_budget or chosen(args, "budget_choice.json", "chosen")
    if rule is None:
        raise SystemExit("no over-budget rule chosen yet: run `budget-choice` (budget 54) or pass --over-budget")
    return rule


def direct_path(args, seed: int) -> pathlib.Path:
    """The direct net is the same at every budget: one record per seed, beside the budgets."""
    out = pathlib.Path(args.results) / DIRECT_TAG
    out.mkdir(parents=True, exist_ok=True)
    return out / f"s{seed}.json"


def cmd_direct(args) -> int:
    """The architecture with direct weights (width 1), trained at each seed with the
    study's recipe, data and seed, so that ``report`` pairs every arm with it (the goal's
    "within 1 point of direct" at 82%)."""
    extra = ["model.genetic.encoding=direct"]
    for seed in args.seeds:
        path = direct_path(args, seed)
        if path.exists():
            print(f"skip seed {seed} (done)", flush=True)
            continue
        cfg = config(args, seed, extra)
        cfg = dataclasses.replace(cfg, name=f"allocation_direct_s{seed}")
        rec = TR.result_record(TR.train_and_evaluate(cfg, pathlib.Path(args.runs) / DIRECT_TAG / f"s{seed}",
                                                     dataset=dataset(args, seed), progress=not args.smoke))
        write(path, dict(rec, seed=seed, command=command(args, seed, extra, "train")))
    return 0


def cmd_study(args) -> int:
    out = folder(args) / "study"
    out.mkdir(exist_ok=True)
    for seed in args.seeds:
        path = out / f"s{seed}.json"
        if path.exists():
            print(f"skip seed {seed} (done)", flush=True)
            continue
        extra = [f"evolve.allocation.over_budget={over_budget_rule(args)}",
                 "evolve.final_variants=('evolved','uniform','random')"]
        res, cmd = evolve_run(args, seed, extra, f"study_s{seed}", dataset(args, seed))
        arms = {arm: dict(test_accuracy=res["final"][arm]["test_accuracy"], val_accuracy=res["final"][arm]["val_accuracy"],
                          params=res["final"][arm]["params"], compression=res["final"][arm]["compression"],
                          allocation=res["allocation"][arm]) for arm in ARMS}
        write(path, dict(seed=seed, budget=res["allocation"]["budget"], arms=arms, search_seconds=search_seconds(res),
                         horizon=horizon(args), over_budget=res["allocation"]["over_budget"], command=cmd,
                         provenance=res["provenance"]))
    return 0


def paired_vs(acc: dict[int, float], reference: dict[int, float]) -> dict | None:
    """``acc - reference`` paired by seed (statistics and verdict), or ``None`` unless the
    reference has every seed of ``acc``."""
    if not acc or not set(acc) <= set(reference):
        return None
    pd = paired_difference([acc[s] - reference[s] for s in sorted(acc)])
    return dict(pd.as_dict(), verdict=verdict(pd))


def direct_rows(results: pathlib.Path, sub: pathlib.Path, seeds: list[int], budget: int) -> tuple[dict, list[dict]]:
    """The direct records (``direct``) of ``seeds``: seed -> test accuracy, and the direct
    row of this budget's table (none unless every seed has a record)."""
    recs = {s: json.loads((results / DIRECT_TAG / f"s{s}.json").read_text()) for s in seeds
            if (results / DIRECT_TAG / f"s{s}.json").exists()}
    acc = {s: r["test_accuracy"] for s, r in recs.items()}
    if set(recs) != set(seeds):
        return acc, []
    return acc, [dict(budget=sub.name, budget_params=budget, arm=DIRECT_TAG, seeds=seeds,
                      test_accuracies=[acc[s] for s in seeds], val_accuracies=[recs[s]["val_accuracy"] for s in seeds],
                      params=[recs[s]["params"] for s in seeds], within_budget=None,  # the reference, not an arm of the budget
                      compression=[recs[s]["compression"] for s in seeds], allocation=None,
                      paired_delta_vs_uniform=None, search_seconds=None, commands=[recs[s]["command"] for s in seeds])]


def report_rows(results: pathlib.Path) -> list[dict]:
    """One row per (budget folder, arm) from the study's per-seed records, each paired
    with the uniform arm and, where ``direct`` has its seeds, with the direct net."""
    rows = []
    for sub in sorted(p for p in results.iterdir() if (p / "study").is_dir()):
        first = len(rows)
        recs = sorted((json.loads(p.read_text()) for p in (sub / "study").glob("s[0-9]*.json")), key=lambda r: r["seed"])
        if not recs:
            continue
        sp_path = next((p for p in (sub / "spearman.json", results / CHOICE_TAG / "spearman.json") if p.exists()), None)
        sp = json.loads(sp_path.read_text()) if sp_path else None
        uniform = {r["seed"]: r["arms"]["uniform"]["test_accuracy"] for r in recs}
        for arm in ARMS:
            acc = {r["seed"]: r["arms"][arm]["test_accuracy"] for r in recs}
            rows.append(dict(
                budget=sub.name, budget_params=recs[0]["budget"], arm=arm, seeds=[r["seed"] for r in recs],
                test_accuracies=[acc[r["seed"]] for r in recs],
                val_accuracies=[r["arms"][arm]["val_accuracy"] for r in recs],
                params=[r["arms"][arm]["params"] for r in recs],
                within_budget=[r["arms"][arm]["params"] <= r["budget"] for r in recs],  # the penalty may exceed it
                compression=[r["arms"][arm]["compression"] for r in recs],
                allocation=[r["arms"][arm]["allocation"]["layers"] for r in recs],
                paired_delta_vs_uniform=None if arm == "uniform" else paired_vs(acc, uniform),
                search_seconds=[r["search_seconds"] for r in recs], horizon=recs[0]["horizon"],
                over_budget=recs[0]["over_budget"], commands=[r["command"] for r in recs],
                fitness_vs_trained_spearman=sp))
        sur = sorted((json.loads(p.read_text()) for p in (sub / "study").glob(f"{SURROGATE_ARM}_s*.json")),
                     key=lambda r: r["seed"])
        paired = [r for r in sur if r["seed"] in uniform]
        if len(paired) < len(sur):
            print(f"{sub.name}: surrogate seeds {sorted({r['seed'] for r in sur} - set(uniform))} have no study record "
                  f"(its uniform arm) yet: left out of the pairing", file=sys.stderr)
        if paired:
            rows.append(dict(
                budget=sub.name, budget_params=recs[0]["budget"], arm=SURROGATE_ARM, seeds=[r["seed"] for r in paired],
                test_accuracies=[r["test_accuracy"] for r in paired], val_accuracies=[r["val_accuracy"] for r in paired],
                params=[r["params"] for r in paired], within_budget=[r["params"] <= recs[0]["budget"] for r in paired],
                compression=[r["compression"] for r in paired],
                allocation=[r["allocation"]["layers"] for r in paired],
                paired_delta_vs_uniform=paired_vs({r["seed"]: r["test_accuracy"] for r in paired}, uniform),
                search_seconds=[r["surrogate"]["search_seconds"] for r in paired],
                sample_training_seconds=paired[0]["surrogate"]["sample_training_seconds"],
                commands=[r["command"] for r in paired], surrogate=paired[0]["surrogate"]))
        direct, extra = direct_rows(results, sub, [r["seed"] for r in recs], recs[0]["budget"])
        rows.extend(extra)
        for row in rows[first:]:
            row["paired_delta_vs_direct"] = None if row["arm"] == DIRECT_TAG else paired_vs(
                dict(zip(row["seeds"], row["test_accuracies"])), direct)
    return rows


def cmd_report(args) -> int:
    rows = report_rows(pathlib.Path(args.results))
    if not rows:
        print(f"no study records under {args.results}; run `study` first", file=sys.stderr)
        return 2
    for r in rows:
        d = r["paired_delta_vs_uniform"]
        over = [s for s, ok in zip(r["seeds"], r["within_budget"] or ()) if not ok]
        dd = r["paired_delta_vs_direct"]
        print(f"{r['budget']:12s} {r['arm']:9s} test {np.mean(r['test_accuracies']):.4f} params {r['params']} "
              + ("" if d is None else f"vs uniform: {d['verdict']}")
              + ("" if dd is None else f"; vs direct: {dd['verdict']}")
              + (f"; OVER the budget of {r['budget_params']:,} at seeds {over}" if over else ""), flush=True)
    write(pathlib.Path(args.out), rows)
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    png = plots.plot_paired_arms(
        [dict(title=f"{b}: budget {next(r['budget_params'] for r in rows if r['budget'] == b):,} params",
              arms=[dict(name=r["arm"], seeds=r["seeds"], values=[100 * a for a in r["test_accuracies"]])
                    for r in rows if r["budget"] == b]) for b in budgets],
        pathlib.Path(args.out).with_suffix(".png"))
    print(f"wrote {png}", flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def add(name, fn, seeds=False, **extra):
        p = sub.add_parser(name)
        p.add_argument("--budget", choices=sorted(BASELINES), required=name != "report")
        p.add_argument("--mode", choices=("position", "neuron"), default=None)
        p.add_argument("--smoke", action="store_true", help="generated 8x8 data, the config shrunk (tests)")
        p.add_argument("--results", default=str(RESULTS))
        p.add_argument("--runs", default=str(RUNS))
        p.add_argument("--inner-steps", type=int, default=None, help="the search's horizon K (default: spearman's)")
        if seeds:
            p.add_argument("--seeds", type=int, nargs="+", default=list(STUDY_SEEDS))
        else:
            p.add_argument("--seed", type=int, default=CHOICE_SEED if name == "budget-choice" else 0)
        for flag, kw in extra.items():
            p.add_argument(flag, **kw)
        p.set_defaults(func=fn)

    add("sample", cmd_sample, **{"--n": dict(type=int, default=14)})
    add("fitness", cmd_fitness, **{"--horizons": dict(type=int, nargs="+", default=[10, 40, 160])})
    add("train", cmd_train, **{"--samples": dict(type=int, nargs="+", default=None,
                                                 help="only these sample indices, in this order (default: all)")})
    add("spearman", cmd_spearman)
    add("structure", cmd_structure)
    add("budget-choice", cmd_budget_choice)
    add("study", cmd_study, seeds=True, **{"--over-budget": dict(choices=("project", "penalty"), default=None,
                                                                  help="default: the rule budget-choice chose")})
    add("surrogate", cmd_surrogate)
    add("surrogate-study", cmd_surrogate_study, seeds=True)
    add("direct", cmd_direct, seeds=True)
    add("report", cmd_report, **{"--out": dict(default=str(OUT))})
    args = ap.parse_args(argv)
    if args.budget is not None and args.mode is None:
        args.mode = "position" if args.budget == "54" else "neuron"
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
