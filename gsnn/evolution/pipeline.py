"""The whole STE pipeline: evolve, then train the final variants (evolved, random, direct)
with the run's training recipe.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib


from gsnn import config as cfgs
from gsnn import data as D
from gsnn import training as TR
import gsnn.evolution.race as RC
from gsnn.evolution.loop import evolve, genome_init_fn
from gsnn.runtime import distributed as DI
from gsnn.runtime.provenance import provenance
from gsnn.runtime.records import to_jsonable


FINAL_VARIANTS = ("evolved", "random", "direct")
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
      ``signal`` (:func:`gsnn.evolution.signal.signal_summary`), ``config``, and
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
    for variant in cfg.evolve.final_variants:
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
        final=final,
        **DI.job_record(),
        data_fingerprint=ds.fingerprint() if hasattr(ds, "fingerprint") else "streamed: whole TFDS splits",
        provenance=provenance(),
    )
