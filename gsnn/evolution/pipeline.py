"""The whole STE pipeline: evolve, then train the final variants (evolved, random, direct)
with the run's training recipe.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np

from gsnn import config as cfgs
from gsnn import data as D
from gsnn import training as TR
import gsnn.evolution.allocation as A
import gsnn.evolution.budget as BG
import gsnn.evolution.genome as GN
import gsnn.evolution.race as RC
from gsnn.evolution.loop import evolve, genome_init_fn
from gsnn.nn import networks as M
from gsnn.runtime import distributed as DI
from gsnn.runtime.provenance import provenance
from gsnn.runtime.records import to_jsonable


FINAL_VARIANTS = cfgs.FINAL_VARIANT_NAMES
#: Folded into the seed's key for the ``random`` final of an allocation search.
RANDOM_ALLOCATION_STREAM = 41
#: The best genome is stored in ``evolution.json`` up to this many values (larger ones,
#: e.g. with ``evolve.wiring.full_encodings``, stay in the checkpoint only).
GENOME_RECORD_LIMIT = 10_000


def variant_config(cfg: cfgs.Config, variant: str) -> cfgs.Config:
    """The config of a final variant: ``direct`` swaps the encoding, the rest keep it."""
    name = f"{cfg.name}_{variant}"
    if variant == "direct":
        model = dataclasses.replace(cfg.model, genetic=dataclasses.replace(cfg.model.genetic, encoding="direct"))
        return dataclasses.replace(cfg, name=name, model=model)
    return dataclasses.replace(cfg, name=name)


def run_evolution(
    cfg: cfgs.Config,
    workdir: str | pathlib.Path,
    *,
    dataset: D.ArrayDataset | None = None,
    progress: bool = True,
) -> dict:
    """``gsnn evolve``: evolve, then train each of ``cfg.evolve.final_variants`` with
    ``cfg.train`` (the direct baseline's recipe) and evaluate on the test split.

    Every stage checkpoints under ``workdir`` and resumes by itself. In a job of several
    processes the search is sharded over every process's devices, and every process
    trains the same final variants on its own devices (replicated, same seed, same
    result); process 0 writes the records (docs/MULTIHOST.md).

    Returns:
      JSON-ready dict (``evolution.json``): ``generations``, ``final`` (variant ->
      record), ``genome_size``, ``best_generation``, ``generations_to_target``,
      ``signal`` (:func:`gsnn.evolution.signal.signal_summary`), ``config``,
      ``allocation`` (an allocation search's :func:`allocation_finals` record: the
      budget, and the evolved, uniform and random allocations, per layer genes of each
      rule and rules, with their parameter counts; ``None`` for the wiring genome), and
      ``best_genome`` (the selected genome as nested lists, for reading what evolution
      chose; ``None`` above :data:`GENOME_RECORD_LIMIT` values), ``race`` (the final
      race's record, or ``None``), ``processes`` and ``devices`` (the job's process
      count and global device count), ``data_fingerprint`` and ``provenance`` (DESIGN
      1.6). When the race keeps the random wiring and the run
      has one base draw, ``evolved`` and ``random`` are the same network, trained once.

    Raises:
      gsnn.evolution.loop.SearchDivergedError: every individual of the search diverged;
        nothing is trained (the zero genome is never passed on as ``evolved``).
    """
    cfg = cfg.validate()
    workdir = pathlib.Path(workdir)
    ds = dataset if dataset is not None else TR.load_data(cfg)
    evo = evolve(cfg, workdir, dataset=ds, progress=progress)
    problem = evo["problem"]
    final, twin_record = {}, None
    race = evo["race"]
    kept_random = race is not None and race["finalists"][race["winner"]]["source"] == RC.BASELINE
    finals = allocation_finals(cfg, problem, evo) if problem.search is not None else None
    if finals is not None and progress:
        print(allocation_line(finals["record"]), flush=True)
    for variant in cfg.evolve.final_variants:
        if finals is not None and variant != "direct":
            final[variant] = _train_allocation_final(cfg, variant, finals, final, ds, workdir, progress)
            continue
        vcfg = variant_config(cfg, variant)
        # with one base draw, the zero genome's network is the random twin: trained once
        twin = problem.base_key is not None and (variant == "random" or (variant == "evolved" and kept_random))
        if twin and twin_record is not None:
            final[variant] = dict(twin_record, variant=variant)
            continue
        if variant == "evolved":
            init_fn = genome_init_fn(problem, evo["best_genome"])
        elif variant == "random" and problem.base_key is not None:  # the same base draw, zero genome
            init_fn = genome_init_fn(problem, evo["mean_genome"])
        else:
            init_fn = None
        if progress:
            print(f"-- final training: {variant} ({vcfg.train.epochs} epochs)", flush=True)
        r = TR.train_and_evaluate(vcfg, workdir / f"final_{variant}", dataset=ds, progress=progress, init_fn=init_fn,
                                  resume_hint=f"gsnn evolve --resume {workdir}")
        final[variant] = dict(variant=variant, **TR.result_record(r))
        if twin:
            twin_record = final[variant]
    return dict(
        name=cfg.name,
        config=json.loads(cfg.to_json()),
        genome_size=evo["genome_size"],
        best_genome=to_jsonable(evo["best_genome"]) if evo["genome_size"] <= GENOME_RECORD_LIMIT else None,
        best_fitness=evo["best_fitness"],
        best_generation=evo["best_generation"],
        generations_to_target=evo["generations_to_target"],
        generations=evo["generations"],
        signal=evo["signal"],
        race=race,
        allocation=None if finals is None else finals["record"],
        final=final,
        **DI.job_record(),
        data_fingerprint=ds.fingerprint() if hasattr(ds, "fingerprint") else "streamed: whole TFDS splits",
        provenance=provenance(),
    )


def allocation_finals(cfg: cfgs.Config, problem, evo: dict) -> dict:
    """The final networks of an allocation search, each built directly at its own size
    (:func:`gsnn.evolution.budget.model_config`): ``evolved`` (the best genome's
    allocation, projected as the search evaluated it), ``random``
    (:func:`gsnn.evolution.budget.random_allocation` at the budget, key ``seed`` folded
    with :data:`RANDOM_ALLOCATION_STREAM`) and ``uniform`` (the model as configured).

    Returns ``{"models": {variant: ModelConfig}, "init": {variant: init_fn or None},
    "record": ...}``: a final is initialised as its directly built network is (``None``),
    except the evolved network of a ``both`` genome, whose evolved wiring is carried:
    the active slices of the masked network's initialisation
    (:func:`gsnn.evolution.allocation.slice_params`, equal to the directly built one's
    draws at those sizes: tests/test_allocation.py). ``record`` holds the budget rule
    and each allocation's :func:`gsnn.evolution.budget.describe` (the evolved one with
    its ``gsnn params`` command) (:func:`allocation_line` says it in one line).
    """
    search = problem.search
    shape = problem.train_split.image_shape
    best = jax.tree_util.tree_map(np.asarray, evo["best_genome"])
    evolved, _ = BG.individual(best[BG.KEY], search)
    evolved = jax.tree_util.tree_map(np.asarray, evolved)
    random = jax.tree_util.tree_map(np.asarray, BG.random_allocation(
        jax.random.fold_in(jax.random.key(cfg.seed), RANDOM_ALLOCATION_STREAM), search))
    a = cfg.evolve.allocation
    record = dict(genome=search.genome, budget=search.budget, over_budget=search.over_budget,
                  penalty=search.penalty if search.over_budget == "penalty" else None,
                  max_genes=search.layout.genes, max_rules=search.layout.rules, configured_budget=a.budget,
                  evolved=dict(BG.describe(evolved, search), params_command=BG.params_command(cfg, evolved, search, shape)),
                  uniform=BG.describe(search.uniform, search), random=BG.describe(random, search))
    keep_wiring = search.genome == "both"
    models = dict(evolved=BG.model_config(cfg, evolved, search) if not keep_wiring else _layer_genes_model(cfg, evolved, search),
                  random=BG.model_config(cfg, random, search), uniform=cfg.model)
    init = dict(evolved=_sliced_init_fn(problem, best, evolved) if keep_wiring else None, random=None, uniform=None)
    return dict(models=models, init=init, record=record)


def allocation_line(record: dict) -> str:
    """One log line of :func:`allocation_finals`'s ``record``."""
    ev, un, ra = record["evolved"], record["uniform"], record["random"]
    return (f"allocation search: budget {record['budget']:,} parameters; evolved {ev['counts']} = "
            f"{ev['params']:,} parameters; uniform {un['params']:,}; random {ra['counts']} = {ra['params']:,}; "
            f"count it: {ev['params_command']}")


def _layer_genes_model(cfg: cfgs.Config, alloc, search) -> cfgs.ModelConfig:
    g = cfg.model.genetic
    return dataclasses.replace(cfg.model, genetic=dataclasses.replace(
        g, genes=search.layout.genes, rules=search.layout.rules,
        layer_genes=A.layer_genes(alloc, search.layout))).validate()


def _sliced_init_fn(problem, genome, alloc):
    """``key -> variables`` of the directly built network of ``alloc`` with the wiring of
    ``genome`` (``both``): the masked network's initial parameters, sliced."""
    search, model, shape = problem.search, problem.steps.model, problem.train_split.image_shape

    def init(key):
        base = M.init_variables(model, key if problem.base_key is None else problem.base_key, shape)
        wired = GN.build_params(problem.spec, BG.wiring_part(genome), base["params"], problem.reference_G)
        params = A.rescale_init(wired, alloc, search.layout)
        with jax.ensure_compile_time_eval():  # the slices' sizes from the concrete allocation, under jit
            sliced = A.slice_params(params, alloc, search.layout)
        return {"params": sliced, "batch_stats": base["batch_stats"]}

    return init


def _train_allocation_final(cfg, variant: str, finals: dict, done: dict, ds, workdir, progress) -> dict:
    """Trains one final of an allocation search (or copies the record of a final
    already trained with the same network and initialisation: e.g. an evolved
    allocation that is the uniform one)."""
    model, init_fn = finals["models"][variant], finals["init"][variant]
    for other, rec in done.items():
        if other in finals["models"] and finals["models"][other] == model and init_fn is None \
                and finals["init"][other] is None:
            return dict(rec, variant=variant, same_network_as=other)
    vcfg = dataclasses.replace(cfg, name=f"{cfg.name}_{variant}", model=model)
    if progress:
        print(f"-- final training: {variant} ({vcfg.train.epochs} epochs)", flush=True)
    r = TR.train_and_evaluate(vcfg, workdir / f"final_{variant}", dataset=ds, progress=progress, init_fn=init_fn,
                              resume_hint=f"gsnn evolve --resume {workdir}")
    out = dict(variant=variant, **TR.result_record(r))
    if variant in finals["record"]:
        out["allocation"] = finals["record"][variant]
    return out
