"""The effective learning rate of the study's generated weights at initialisation
(``gsnn.analysis.effective_lr``): how far one SGD step moves each layer's weight against
the step of a direct weight, for the study's rows and for the trained allocations of
issue 26, and how it goes with their trained accuracy.

    python experiments/effective_lr.py variants                 # direct, position_50_r2, neuron_50_r2, ...
    python experiments/effective_lr.py allocations --budget 54  # the trained samples of experiments/allocation.py

Every number is of the network at its seed-0 initialisation (the study's config, built
directly), probed with one isotropic ``Gamma`` per layer on one random image; ``self`` 1
and ``cross`` 0 is a direct weight. Writes ``experiments/results/effective_lr/*.json``
(and ``allocations_b54.png``: each layer's ``self`` against the trained validation
accuracy). Seconds per network on this CPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import allocation as X  # noqa: E402
import cifar10_study as S  # noqa: E402

from gsnn import config as cfgs  # noqa: E402
from gsnn import data as D  # noqa: E402
from gsnn import training as TR  # noqa: E402
from gsnn.analysis import effective_lr as E  # noqa: E402
from gsnn.analysis import plots  # noqa: E402
from gsnn.evolution import budget as BG  # noqa: E402
from gsnn.nn import networks as M  # noqa: E402
from gsnn.runtime.provenance import provenance  # noqa: E402

OUT = pathlib.Path("experiments/results/effective_lr")
VARIANTS = ("direct", "position_50_r2", "neuron_50_r2", "neuron_80_r2", "direct_w065", "direct_w037")
SHAPE = (32, 32, 3)


def network(model_cfg: cfgs.ModelConfig, seed: int = 0):
    """``(variables, weights_of)`` of ``model_cfg``'s network at its ``seed`` initialisation
    (:func:`effective_lr.weight_fn` on one random image)."""
    model = M.build_model(model_cfg)
    variables = M.init_variables(model, jax.random.key(seed), SHAPE)
    images = jax.random.uniform(jax.random.key(seed + 1), (1,) + SHAPE)
    return variables, E.weight_fn(model, variables, images, jax.random.key(seed + 2))


def rates(model_cfg: cfgs.ModelConfig, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per layer ``{"self", "cross"}`` of ``model_cfg``'s network at its ``seed`` initialisation."""
    variables, weights_of = network(model_cfg, seed)
    probes = E.isotropic_probes(weights_of(variables["params"]), jax.random.key(seed + 3))
    return E.effective_learning_rates(weights_of, variables["params"], probes)


def training_batch(seed: int, n: int) -> tuple[jax.Array, jax.Array]:
    """The first ``n`` images (normalised) and labels of seed ``seed``'s training subset."""
    ds = TR.load_data(cfgs.load_config(S.BASE, S.BUDGET + [f"seed={seed}"]))
    return D.normalize(ds.train_images[:n], *D.stats_for(ds.name)), jnp.asarray(ds.train_labels[:n])


def cmd_trained(args) -> int:
    """Each run's step multipliers (isotropic probe, the run's own ``train.lr_scale``
    applied) at its initialisation and at its newest checkpoint, with each layer's
    ``||W||^2``: how far the steps drift from where they were set (``lr_choice.py
    --match`` sets them at initialisation), in absolute terms and relative to the weight's
    size (``relative_growth``: the trained ``self / ||W||^2`` over the initial one)."""
    rows = []
    for wd in args.workdirs:
        cfg, state, _ = TR.load_trained(wd)
        variables, weights_of = network(cfg.model, cfg.seed)
        scale = dict(cfg.train.lr_scale)
        row = dict(workdir=wd, lr=cfg.train.learning_rate, lr_scale=scale, step=int(state.step))
        for when, params in (("init", variables["params"]), ("trained", state.params)):
            weights = weights_of(params)
            probes = E.isotropic_probes(weights, jax.random.key(3))
            row[when] = {k: v["self"] for k, v in E.effective_learning_rates(weights_of, params, probes, scale).items()}
            row[f"{when}_weight_sq"] = {k: float(jnp.vdot(w, w)) for k, w in weights.items()}
        # a normalised layer (batch norm after it) responds to W's direction: the step
        # relative to the weight's size, ||dW||^2 / ||W||^2, against its value at init
        row["relative_growth"] = {k: row["trained"][k] / row["trained_weight_sq"][k] * row["init_weight_sq"][k]
                                  / row["init"][k] for k in row["init"]}
        for key in ("init", "trained", "relative_growth"):
            print(f"{pathlib.Path(wd).parent.name}/{pathlib.Path(wd).name:18s} {key:15s} "
                  + "  ".join(f"{k} {v:8.3f}" for k, v in row[key].items()), flush=True)
        rows.append(row)
    fig, axes = plots.plt.subplots(1, 2, figsize=(10, 3.6))
    layers = list(rows[0]["init"])
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        label = f"{pathlib.Path(row['workdir']).parent.name}/{pathlib.Path(row['workdir']).name}"
        for ax, key in zip(axes, ("trained", "relative_growth")):
            ax.bar(np.arange(len(layers)) + i * width, [row[key][k] for k in layers], width, label=label,
                   color=plots.COLORS[i % len(plots.COLORS)])
    for ax, title in zip(axes, ("step x direct at the end (log; 1 = a direct weight)",
                                "self / ||W||^2 (the step a batch-normalised layer feels) at the end over at init")):
        ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers, fontsize=7)
        ax.set_yscale("log")
        ax.axhline(1.0, color="0.6", ls="--", lw=1)
        ax.set_title(title, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=6)
    print(f"wrote {plots.save(fig, OUT / f'{args.name}.png')}", flush=True)
    write(OUT / f"{args.name}.json", dict(rows=rows, probe="one isotropic Gamma per layer, the run's lr_scale applied",
                                          command="python experiments/effective_lr.py trained " + " ".join(args.workdirs)
                                          + f" --name {args.name}", provenance=provenance()))
    return 0


def cmd_probes(args) -> int:
    """Each encoded variant's step multipliers along its real loss gradient on a training
    batch (:func:`effective_lr.gradient_probes`) against the isotropic probe's, and the
    multipliers along the gradient after the isotropic matching (``lr_choice.py --match``)."""
    images, labels = training_batch(0, args.batch)
    direct_cfg = cfgs.load_config(S.BASE, S.VARIANTS["direct"] + S.BUDGET).model
    rows = []
    for name in args.variants:
        cfg = cfgs.load_config(S.BASE, S.VARIANTS[name] + S.BUDGET).model
        variables, weights_of = network(cfg)
        params = variables["params"]
        weights = weights_of(params)
        direct = M.build_model(dataclasses.replace(direct_cfg, width=cfg.width))
        template = M.init_variables(direct, jax.random.key(0), SHAPE)["params"]
        probes = dict(isotropic=E.isotropic_probes(weights, jax.random.key(3)),
                      gradient=E.gradient_probes(direct, template, variables, weights, images, labels,
                                                 jax.random.key(4)))
        row = dict(variant=name)
        for kind, probe in probes.items():
            parts = E.self_contributions(weights_of, params, probe)
            row[kind] = dict(self={k: sum(c.values()) for k, c in parts.items()}, scales=E.matching_scales(parts))
        matched = E.effective_learning_rates(weights_of, params, probes["gradient"], row["isotropic"]["scales"])
        row["gradient"]["self_after_isotropic_matching"] = {k: v["self"] for k, v in matched.items()}
        for key, label in ((("isotropic", "self"), "self, isotropic probe"), (("gradient", "self"), "self, gradient"),
                           (("gradient", "self_after_isotropic_matching"), "gradient, matched")):
            vals = row[key[0]][key[1]]
            print(f"{name:16s} {label:22s} " + "  ".join(f"{k} {v:7.3f}" for k, v in vals.items()), flush=True)
        rows.append(row)
    write(OUT / "probes.json", dict(rows=rows, batch=args.batch, probe="seed-0 initialisation; gradient: the "
                                    "cross-entropy on the first training images of seed 0, training mode",
                                    command=f"python experiments/effective_lr.py probes --batch {args.batch}",
                                    provenance=provenance()))
    return 0


def show(label: str, r: dict) -> None:
    print(f"{label:32s} " + "  ".join(f"{k}: self {v['self']:6.2f} cross {v['cross']:5.2f}" for k, v in r.items()),
          flush=True)


def cmd_variants(args) -> int:
    rows = []
    for name in args.variants:
        cfg = cfgs.load_config(S.BASE, S.VARIANTS[name] + S.BUDGET)
        r = rates(cfg.model)
        show(name, r)
        rows.append(dict(variant=name, layers=r, overrides=S.VARIANTS[name]))
    write(OUT / "variants.json", dict(rows=rows, probe="one isotropic Gamma per layer, seed-0 initialisation",
                                      command="python experiments/effective_lr.py variants", provenance=provenance()))
    return 0


def cmd_allocations(args) -> int:
    a = argparse.Namespace(results=args.results, budget=args.budget, smoke=False, runs=str(X.RUNS), inner_steps=None,
                           mode=args.mode or ("position" if args.budget == "54" else "neuron"))
    cfg = X.config(a, 0)
    search = X.search_of(cfg, SHAPE)
    trained = X.trained_accuracies(a)
    seeds, means = X.seeds_and_means(trained)
    if len(means) != len(trained):
        print(f"the repeat at seeds {seeds[1:]} is partial ({len(means)} of {len(trained)}): seed 0's accuracies",
              flush=True)
        seeds, means = [0], {i: v[0] for i, v in trained.items() if 0 in v}
    rows = []
    for s in X._samples(a):
        if s["index"] not in means:
            continue
        r = rates(BG.model_config(cfg, X.allocation_of(s, search.layout), search))
        show(f"sample{s['index']} {s['counts']}", r)
        rows.append(dict(index=s["index"], counts=s["counts"], val_accuracy=100 * means[s["index"]], layers=r))
    uniform = rates(BG.model_config(cfg, search.uniform, search))
    show(f"uniform {X.baseline(a)}", uniform)
    table = {}
    for layer in rows[0]["layers"]:
        for kind in ("self", "cross"):
            x = [r["layers"][layer][kind] for r in rows]
            rho = X.spearman_rho(x, [r["val_accuracy"] for r in rows]) if np.ptp(x) > 0 else float("nan")
            table[f"{layer} {kind}"] = dict(rho=rho, ci95=X.fisher_interval(rho, len(rows)), n=len(rows))
    for k, v in table.items():
        print(f"{k:24s} rho with trained accuracy {v['rho']:+.2f} {X.ci_text(v['ci95'])}", flush=True)
    folder = pathlib.Path(args.out)
    write(folder / f"allocations_b{a.budget}.json", dict(
        rows=rows, uniform=uniform, seeds=seeds, rho_with_trained=table,
        command=f"python experiments/effective_lr.py allocations --budget {a.budget}", provenance=provenance()))
    uni_acc = X.uniform_val_accuracy(a, seeds)
    layers = [k for k in rows[0]["layers"] if np.ptp([r["layers"][k]["self"] for r in rows]) > 0]
    panels = [dict(label=f"{k} self", rho=table[f"{k} self"]["rho"], ci95=table[f"{k} self"]["ci95"],
                   reference_x=uniform[k]["self"], fitness=[r["layers"][k]["self"] for r in rows],
                   trained=[r["val_accuracy"] for r in rows]) for k in layers]
    png = plots.plot_fitness_vs_trained(panels, folder / f"allocations_b{a.budget}.png", reference=uni_acc,
                                        reference_label=f"{X.baseline(a)} (uniform)",
                                        xlabel="effective learning rate (x direct)",
                                        ylabel=f"trained validation accuracy (%), seeds {seeds}")
    print(f"wrote {png}", flush=True)
    return 0


def write(path: pathlib.Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float))
    print(f"wrote {path}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("variants")
    v.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(S.VARIANTS))
    v.set_defaults(func=cmd_variants)
    t = sub.add_parser("trained")
    t.add_argument("workdirs", nargs="+", help="training workdirs (gsnn train's; the newest checkpoint is read)")
    t.add_argument("--name", default="trained", help="the output's stem under results/effective_lr/")
    t.set_defaults(func=cmd_trained)
    p = sub.add_parser("probes")
    p.add_argument("--variants", nargs="+", default=[v for v in VARIANTS if not v.startswith("direct")],
                   choices=list(S.VARIANTS))
    p.add_argument("--batch", type=int, default=128)
    p.set_defaults(func=cmd_probes)
    a = sub.add_parser("allocations")
    a.add_argument("--budget", choices=sorted(X.BASELINES), default="54")
    a.add_argument("--mode", choices=("position", "neuron"), default=None)
    a.add_argument("--results", default=str(X.RESULTS))
    a.add_argument("--out", default=str(OUT))
    a.set_defaults(func=cmd_allocations)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
