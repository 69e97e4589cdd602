"""The ``gsnn demo``: what the genetic encoding is good for, on the embedded set.

Trains variants of the same spiking ConvNet with one shared recipe on the embedded
CIFAR-10 subset (5000 training / 1000 test images, see ``gsnn/assets/README.md``), so it
runs on a fresh machine with no network:

* ``direct``: ordinary weights;
* ``neuron_r2``: genetic encoding with two interaction rules (DESIGN 1.1), one encoding
  per neuron population, about half the parameters: the issue 11 study's best forms
  (``neuron_50_r2``, ``position_50_r2``) were about 1 point below direct at 54% fewer
  parameters;
* ``direct_w033``: a direct net narrowed to the two-rule net's parameter count, the
  comparison the study found in the encoding's favour (experiments/RESULTS.md);
* ``position_r2``: the other two-rule form, private per-layer encodings and a direct
  read-out, at the same size;
* ``position``: the one-rule encoding at the same size;
* with ``evolve=True`` (``gsnn demo --evolve``), ``evolved``: the ``position`` network
  with STE-evolved initial wiring. Its evolution runs first and builds every individual
  on one base draw (``evolve.fixed_base``); the ``position`` row is then that draw with
  the zero genome, so the two rows are a paired comparison of evolved against random
  wiring,

and reports test accuracy, parameters, firing rates, energy per inference in two
conventions (``W`` generated once at load, the deployed case, first; then generating
``W`` for every inference, or the factorised path a one-rule layer runs) and train time,
as one table, ``demo.json`` and ``demo.png``. The genes and widths were chosen on a
validation split of the training images (``experiments/demo_selection.py``), never on
the test images.

The demo is sized for a 2-core CPU (a few minutes): the network runs at a *demo width*
(a channel multiplier below 1, stated in the table header) for a few epochs, so its
accuracies are far below CIFAR-10 results at full width and budget, and one seed on
1,000 test images has a standard error of about 1.5 points.

The variants are configs shipped with gsnn (``gsnn/assets/configs/demo_*.py``), so
``gsnn train --config demo_neuron_r2`` trains one of them alone. What the demo trains
(variants, sizes, the recipe) is :mod:`gsnn.demo_configs`, the one place to change it.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import time

from gsnn import evolution, training
from gsnn.analysis.tables import format_count, format_table
from gsnn.analysis import plots
from gsnn.analysis.energy import PJ_PER_AC, PJ_PER_MAC, synaptic_operations
from gsnn.config import Config
from gsnn.demo_configs import (DEFAULT_VARIANTS, DEMO_BATCH, DEMO_EPOCHS, DEMO_T, DEMO_WIDTH, EVOLVE_VARIANTS,
                               VARIANTS, Variant, demo_config, demo_evolution, demo_recipe, get_variant)
from gsnn.nn.networks import build_model, describe
from gsnn.runtime.records import to_jsonable, write_json

# --------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------


def deployed_operations(cfg: Config, energy: dict) -> dict:
    """Synaptic operations and energy per inference of the *deployed* net: every encoded
    ``W`` generated once at load, then every layer run on its materialised weights like
    a direct layer of its shapes, with the input densities measured on the test set.

    ``energy_report``'s ``energy_uj_generated_once`` is the same for materialised layers;
    a one-rule layer that trains factorised (``execution="auto"``) is counted here as
    deployed on its materialised ``W`` too.

    Args:
      cfg: the variant's config (its model is described with ``execution="materialise"``).
      energy: ``train_and_evaluate``'s ``energy`` (its ``synaptic_ops`` hold the measured
        input densities per layer).

    Returns:
      dict with ``acs``, ``macs`` and ``energy_uj`` per inference.
    """
    model = cfg.model
    if model.genetic.encoded:
        model = dataclasses.replace(model, genetic=dataclasses.replace(model.genetic, execution="materialise"))
    densities = {r["name"]: r["input_density"] for r in energy["synaptic_ops"]}
    synapses = describe(build_model(model.validate()), batch=1)[0]
    ops = synaptic_operations(synapses, densities, model.T, batch=1)
    acs, macs = sum(r["acs"] for r in ops), sum(r["macs"] for r in ops)
    return dict(acs=acs, macs=macs, energy_uj=(acs * PJ_PER_AC + macs * PJ_PER_MAC) * 1e-6)


def _summary(variant: Variant, cfg: Config, result: dict, seconds: float) -> dict:
    """One variant's row of the demo (plain JSON types). ``energy_uj``, ``acs`` and
    ``macs`` generate ``W`` for every inference (or run a one-rule layer factorised);
    ``deployed_*`` generate it once at load (:func:`deployed_operations`)."""
    record = training.result_record(result)
    deployed = deployed_operations(cfg, result["energy"])
    record.update(variant=variant.name, label=variant.label(cfg.model.width), description=variant.description,
                  encoding=variant.encoding, genes=variant.genes, rules=variant.rules, width=cfg.model.width,
                  config=cfg.name, weight_bytes=result["energy"]["weight_bytes"],
                  synthesis_macs=result["energy"]["synthesis_macs"],
                  deployed_energy_uj=deployed["energy_uj"], deployed_acs=deployed["acs"],
                  deployed_macs=deployed["macs"],
                  train_seconds=seconds, epoch_seconds=sum(h["epoch_seconds"] for h in result["history"]))
    return to_jsonable(record)


def demo_variants(evolve: bool = False, variants: tuple[str, ...] | None = None) -> list[Variant]:
    """The rows one demo run trains, in table order: ``variants`` (default
    :data:`DEFAULT_VARIANTS`), plus :data:`EVOLVE_VARIANTS` with ``evolve``."""
    names = list(variants or DEFAULT_VARIANTS)
    if evolve:
        names += [n for n in EVOLVE_VARIANTS if n not in names]
    if len(set(names)) != len(names):
        raise ValueError(f"a demo variant is named twice: {names}")
    return [get_variant(n) for n in names]


def run_demo(out_dir: str | pathlib.Path = "gsnn-demo", epochs: int | None = None, quick: bool = False,
             progress: bool = True, variants: tuple[str, ...] | None = None, evolve: bool = False) -> dict:
    """Trains the demo variants and writes ``demo.json`` and ``demo.png`` into ``out_dir``.

    Args:
      out_dir: output folder (created).
      epochs: training epochs per variant (default :data:`DEMO_EPOCHS`; 1 with ``quick``).
      quick: a ~30 s smoke run (tiny width, 200 training images).
      progress: print a header per variant and the per-epoch lines.
      variants: names from :data:`VARIANTS` (default :data:`DEFAULT_VARIANTS`).
      evolve: add the STE-evolved row and its random-wiring twin (:data:`EVOLVE_VARIANTS`).

    Returns:
      dict with ``variants`` (one summary per variant: accuracy, parameters,
      compression, firing rates, energy and ACs/MACs in both conventions, train time,
      history), ``settings``
      (architecture, width, T, epochs, batch, recipe, data), ``wall_seconds``, and the
      paths of the files written.
    """
    t_start = time.perf_counter()
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = demo_variants(evolve, variants)
    configs = [demo_config(v, epochs=epochs, quick=quick) for v in chosen]
    base = configs[0]
    dataset = training.load_data(base)  # every variant has the same data config
    rows = []
    evo, evolution_run = None, None
    if any(v.name == "evolved" for v in chosen):
        # first, so that the random-wiring row can be built on the evolution's base draw
        v, cfg = next((v, c) for v, c in zip(chosen, configs) if v.name == "evolved")
        if progress:
            print(f"\n=== evolving the initial wiring of '{v.name}' ===", flush=True)
        t0 = time.perf_counter()
        evo = evolution.evolve(cfg, None, dataset=dataset, progress=progress)
        evolution_run = dict(generations=evo["generations"], genome_size=evo["genome_size"],
                             best_fitness=evo["best_fitness"], best_generation=evo["best_generation"],
                             settings=dataclasses.asdict(cfg.evolve), signal=evo["signal"],
                             seconds=time.perf_counter() - t0,
                             paired=evo["problem"].base_key is not None and any(v.name == "position" for v in chosen))
    for i, (v, cfg) in enumerate(zip(chosen, configs)):
        if progress:
            print(f"\n=== [{i + 1}/{len(chosen)}] {v.label(cfg.model.width)}: convnet_s width {cfg.model.width:g}, {v.description} ===",
                  flush=True)
        t0 = time.perf_counter()
        init_fn = None
        if v.name == "evolved":
            init_fn = evolution.genome_init_fn(evo["problem"], evo["best_genome"])
            if progress:
                print(f"-- training the best genome (generation {evo['best_generation']}) with the shared recipe",
                      flush=True)
        elif v.name == "position" and evolution_run and evolution_run["paired"]:
            # random wiring on the evolution's one base draw (the zero genome): the evolved
            # row's paired twin
            init_fn = evolution.genome_init_fn(evo["problem"], evo["mean_genome"])
        result = training.train_and_evaluate(cfg, None, dataset=dataset, progress=progress, init_fn=init_fn)
        seconds = time.perf_counter() - t0 + (evolution_run["seconds"] if v.name == "evolved" else 0.0)
        rows.append(_summary(v, cfg, result, seconds))
    m, tc = base.model, base.train
    summary = dict(
        settings=dict(
            arch=m.arch, width=m.width, T=m.T, epochs=tc.epochs, batch_size=tc.batch_size,
            quick=quick, seed=base.seed, dataset=dataset.name,
            train_images=int(len(dataset.train_labels)), test_images=int(len(dataset.test_labels)),
            recipe=dataclasses.asdict(tc),
            init_scheme=base.model.genetic.init_scheme,
        ),
        variants=rows,
        evolution=evolution_run,
        wall_seconds=time.perf_counter() - t_start,
    )
    summary["json"] = str(out / "demo.json")
    summary["png"] = str(out / "demo.png")
    plots.plot_demo(summary, out / "demo.png")
    summary = to_jsonable(summary)
    write_json(out / "demo.json", summary)
    return summary


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


def demo_table(result: dict) -> str:
    """The demo's comparison table, with a header stating the settings."""
    s = result["settings"]
    r = s["recipe"]
    opt = (f"{r['optimizer'].upper()} lr {r['learning_rate']:g}"
           + (f" momentum {r['momentum']:g}" if r["optimizer"] == "sgd" else "")
           + f" wd {r['weight_decay']:g}, cosine")
    width = f"demo width {s['width']:g}" if s["width"] != 1 else "full width"
    head = (f"convnet_s at {width}, T={s['T']}, {s['epochs']} epoch{'s' if s['epochs'] != 1 else ''}, "
            f"batch {s['batch_size']}, {opt}, init {s['init_scheme']}; "
            f"{s['dataset']} set: {s['train_images']} train / {s['test_images']} test images"
            f"{' (QUICK smoke run)' if s.get('quick') else ''}")
    header = ["variant", "test acc", "params", "fewer", "firing rate", "uJ/inf (W once)", "uJ/inf (W per inf)",
              "ACs", "MACs", "train time"]
    rows = []
    fewer = _fewer_than_direct(result["variants"])
    for v, f in zip(result["variants"], fewer):
        rows.append([_label(v), f"{100 * v['test_accuracy']:.1f}%", f"{v['params']:,}", f"{100 * f:.1f}%", f"{v['mean_firing_rate']:.3f}",
                     f"{v['deployed_energy_uj']:.3f}", f"{v['energy_uj']:.3f}",
                     format_count(v["deployed_acs"]), format_count(v["deployed_macs"]),
                     f"{v['train_seconds']:.0f} s"])
    n = s["test_images"]
    p = sum(v["test_accuracy"] for v in result["variants"]) / max(1, len(result["variants"]))
    foot = (f"One seed on {n:,} test images (a standard error of about {100 * math.sqrt(p * (1 - p) / n):.1f} points), "
            "so the rows may not come out in the order of the issue 11 study, whose intervals over 3 seeds are in "
            "experiments/RESULTS.md.")
    foot += _equal_size(result["variants"])
    foot += ("\nfewer: parameters fewer than full direct. Energy per inference at 0.9 pJ/AC, 4.6 pJ/MAC (45 nm): "
            "'W once' is the deployed net, each W generated once at load and every layer run on its weights "
            "(the ACs and MACs shown); 'W per inf' generates W for every inference (two rules) or runs a one-rule "
            "layer factorised. train time: per variant, compilation and evaluation included")
    evo = result.get("evolution")
    if evo:
        g = evo["generations"]
        foot += (f"\nevolved: {len(g)} generations x {evo['settings']['search']['population']} individuals "
                 f"({evo['seconds']:.0f} s, in its train time), genome {evo['genome_size']} values; best val accuracy "
                 f"{100 * g[0]['best_val_accuracy']:.1f}% (gen 1) -> {100 * max(r['best_val_accuracy'] for r in g):.1f}%; "
                 f"'position' is the same encoding with random wiring"
                 + (" on the same base draw (a paired twin)" if evo.get("paired") else ""))
        foot += _evolved_vs_random(result["variants"], evo)
    return (head + "\n\n" + format_table(rows, header) + "\n" + foot
            + f"\nwall time {result['wall_seconds']:.0f} s")


def _fewer_than_direct(variants: list[dict]) -> list[float]:
    """Each row's fraction of parameters fewer than full direct (the run's widest direct
    row, else each row's own direct count)."""
    direct = [v["params"] for v in variants if v["encoding"] == "direct"]
    return [1 - v["params"] / max(direct) if direct else v["compression"] for v in variants]


def _label(v: dict) -> str:
    """A row's name in the table (``label`` from :class:`Variant`; older records lack it)."""
    if "label" in v:
        return v["label"]
    return v["variant"] + ("" if v["encoding"] == "direct" else f" (g={v['genes']})")


def _equal_size(variants: list[dict], tolerance: float = 0.05) -> str:
    """One line per encoded row with several rules: its test accuracy against full direct
    and against a narrowed direct row with a parameter count within ``tolerance``."""
    direct = [v for v in variants if v["encoding"] == "direct"]
    full = max(direct, key=lambda v: v["params"], default=None)
    lines = []
    for enc in (v for v in variants if v["encoding"] != "direct" and v.get("rules", 1) > 1):
        same = [v for v in direct if v is not full and abs(v["params"] - enc["params"]) <= tolerance * enc["params"]]
        if full is None or not same:
            continue
        d = lambda other: f"{100 * (enc['test_accuracy'] - other['test_accuracy']):+.1f}"
        lines.append(f"\n{_label(enc)}: {d(full)} points against direct at {100 * enc['compression']:.0f}% fewer "
                     f"parameters, {d(same[0])} against the direct net of its size ({same[0]['variant']}, "
                     f"{same[0]['params']:,} vs {enc['params']:,} parameters)")
    return "".join(lines)


def _evolved_vs_random(variants: list[dict], evo: dict) -> str:
    """A sentence when the evolved row trails its random-wiring twin (``position``): by
    how much, and the measured reason (the fitness's signal at generation 1)."""
    acc = {v["variant"]: v["test_accuracy"] for v in variants}
    if "evolved" not in acc or "position" not in acc or acc["evolved"] >= acc["position"]:
        return ""
    rho = (evo.get("signal") or {}).get("spearman")
    gap = f"\nevolved is {100 * (acc['position'] - acc['evolved']):.1f} points below random wiring: "
    if rho is None:
        return gap + "the fitness's signal was not measured in this run, so selection may be close to random"
    if rho < 0.5:
        return (gap + f"the fitness does not separate genomes by more than its own noise (rank correlation "
                f"between two independent evaluations of generation 1: {rho:.2f}; experiments/RESULTS.md, "
                f"'Issue 13'), so selection is close to random")
    return (gap + f"the fitness separates genomes (rank correlation {rho:.2f} between two independent "
            f"evaluations of generation 1), but near the balanced initialisation the loss after the inner "
            f"steps does not rank genomes by their trained accuracy, and random wiring is among the best "
            f"starts (experiments/RESULTS.md, 'Issue 13', fitness horizon)")


__all__ = ["VARIANTS", "DEFAULT_VARIANTS", "EVOLVE_VARIANTS", "Variant", "demo_variants", "deployed_operations", "demo_recipe", "demo_config", "demo_evolution", "get_variant", "run_demo", "demo_table", "format_table",
           "DEMO_WIDTH", "DEMO_T", "DEMO_EPOCHS", "DEMO_BATCH"]
