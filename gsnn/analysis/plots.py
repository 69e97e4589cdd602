"""Figures for results (matplotlib; Agg backend outside notebooks: files only, never a window).

The helpers take plain lists and dicts, so they plot any run's records, not only the
demo's; each draws into a given ``Axes`` (or a new figure) and returns it.
:func:`plot_demo` composes them into the demo's figure.
"""
from __future__ import annotations

import os
import pathlib
import sys
from typing import Mapping, Sequence

import matplotlib

if "ipykernel" not in sys.modules:  # scripts: files only, never a window; notebooks keep inline figures
    matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    return ax


def plot_learning_curves(curves: Mapping[str, Sequence[float]], ax=None, *, epochs: Mapping[str, Sequence[float]] | None = None,
                         ylabel: str = "test accuracy (%)", title: str = "Test accuracy per epoch",
                         chance: float | None = None, percent: bool = True):
    """One line per run: a metric per epoch.

    Args:
      curves: label -> values per epoch (accuracies in [0, 1] when ``percent``).
      ax: axes to draw into (default: a new figure).
      epochs: label -> epoch numbers (default ``1..len(values)``).
      ylabel, title: texts.
      chance: draw a dashed line at this value (e.g. 0.1 for 10 classes).
      percent: show values x100.
    """
    ax = _axes(ax)
    k = 100.0 if percent else 1.0
    for i, (label, values) in enumerate(curves.items()):
        xs = list(epochs[label]) if epochs and label in epochs else list(range(1, len(values) + 1))
        ax.plot(xs, [k * v for v in values], marker="o", color=COLORS[i % len(COLORS)], label=label)
    if chance is not None:
        ax.axhline(k * chance, color="0.5", ls="--", lw=1, label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    n = max((len(v) for v in curves.values()), default=1)
    ax.set_xticks(range(1, n + 1) if n <= 12 else np.linspace(1, n, 7).round().astype(int))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_accuracy_vs_params(points: Sequence[Mapping], ax=None, *, title: str = "Accuracy vs parameters",
                            percent: bool = True, reference: Mapping | None = None, legend: bool = False):
    """Scatter of accuracy against parameter count (log x), each point labelled (or, with
    ``legend=True``, for crowded plots, named in a legend beside the axes).

    Args:
      points: dicts with ``label``, ``params`` and ``accuracy`` (optional
        ``compression`` in [0, 1], added to the label; optional matplotlib ``marker``).
      ax: axes (default: a new figure).
      percent: accuracy shown x100.
      reference: an extra point (``params``, ``accuracy``) drawn hollow and unlabelled.
    """
    ax = _axes(ax)
    k = 100.0 if percent else 1.0
    xs = [float(p["params"]) for p in points]
    for i, p in enumerate(points):
        x, y = float(p["params"]), k * float(p["accuracy"])
        text = p["label"]
        c = p.get("compression")
        if c:
            note = f"{100 * abs(c):.0f}% {'fewer' if c > 0 else 'more'} params"
            text += f" ({note})" if legend else f"\n{note}"
        ax.scatter([x], [y], s=60, color=COLORS[i % len(COLORS)], zorder=3, label=text if legend else None,
                   marker=p.get("marker", "o"))
        if legend:
            continue
        # points at the same parameter count (e.g. evolved vs random wiring) label below
        twin = any(abs(float(q["params"]) - x) <= 0.01 * x for q in points[:i])
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, -26) if twin else (0, 8),
                    ha="center", fontsize=8, color=COLORS[i % len(COLORS)] if twin else "black")
    if reference is not None:
        ax.scatter([reference["params"]], [k * reference["accuracy"]], s=60, facecolors="none",
                   edgecolors="k", zorder=3)
        xs.append(float(reference["params"]))
    ax.set_xscale("log")
    if xs:  # room for the labels
        lo, hi = min(xs), max(xs)
        ax.set_xlim(lo / 2.5, hi * 2.5)
    ys = [k * float(p["accuracy"]) for p in points]
    if ys:
        span = max(max(ys) - min(ys), 5.0 if percent else 0.05)
        ax.set_ylim(min(ys) - 0.35 * span, max(ys) + 0.6 * span)
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("test accuracy (%)" if percent else "test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    if legend:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return ax


def plot_firing_rates(rates: Mapping[str, Mapping[str, float]], ax=None, *,
                      title: str = "Firing rate per layer"):
    """Grouped bars: one group per layer, one bar per run.

    Args:
      rates: run label -> (layer name -> firing rate, spikes per neuron per step).
        Layers are shown in the order first seen.
      ax: axes (default: a new figure).
    """
    ax = _axes(ax)
    layers: list[str] = []
    for r in rates.values():
        for name in r:
            if name not in layers:
                layers.append(name)
    n = max(1, len(rates))
    width = 0.8 / n
    x = np.arange(len(layers))
    for i, (label, r) in enumerate(rates.items()):
        vals = [float(r.get(layer, np.nan)) for layer in layers]
        ax.bar(x + (i - (n - 1) / 2) * width, vals, width, color=COLORS[i % len(COLORS)], label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([_short(layer) for layer in layers], rotation=30 if len(layers) > 6 else 0,
                       ha="right" if len(layers) > 6 else "center")
    ax.set_xlabel("LIF layer")
    ax.set_ylabel("firing rate (spikes / neuron / step)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return ax


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def save(fig, path: str | os.PathLike) -> pathlib.Path:
    """Writes ``fig`` as PNG (parent folders created) and closes it."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_demo(result: Mapping, path: str | os.PathLike) -> pathlib.Path:
    """The demo's figure: (a) test accuracy per epoch, (b) accuracy vs parameters,
    (c) firing rate per layer, one colour per variant.

    Args:
      result: :func:`gsnn.demo.run_demo`'s dict (``variants`` and ``settings``).
      path: PNG file to write.
    """
    variants = result["variants"]
    s = result.get("settings", {})

    def label(v):
        return v["variant"] + ("" if v.get("encoding") == "direct" else f" g={v['genes']}")

    evolution = result.get("evolution")
    fig, axes = plt.subplots(1, 4 if evolution else 3, figsize=(21 if evolution else 16, 4.6))
    evaluated = {label(v): [h for h in v["history"] if "test_accuracy" in h] for v in variants}  # train.eval_every
    plot_learning_curves({k: [h["test_accuracy"] for h in hs] for k, hs in evaluated.items()}, axes[0],
                         epochs={k: [h["epoch"] for h in hs] for k, hs in evaluated.items()},
                         chance=0.1, title="(a) Test accuracy per epoch")
    # fewer parameters than the widest direct row (a narrowed direct net's own compression is 0)
    direct = [v["params"] for v in variants if v.get("encoding") == "direct"]
    plot_accuracy_vs_params([dict(label=label(v), params=v["params"], accuracy=v["test_accuracy"],
                                  compression=1 - v["params"] / max(direct) if direct else v.get("compression"))
                             for v in variants], axes[1], title="(b) Accuracy vs parameters", legend=True)
    plot_firing_rates({label(v): v["firing_rates"] for v in variants}, axes[2],
                      title="(c) Firing rate per layer (test set)")
    if evolution:
        plot_fitness(evolution["generations"], axes[3], title="(d) STE: fitness per generation")
    if s:
        width = f"demo width {s['width']:g}" if s.get("width", 1) != 1 else "full width"
        fig.suptitle(f"gsnn demo: {s.get('arch', '')} at {width}, T={s.get('T')}, {s.get('epochs')} epoch{'' if s.get('epochs') == 1 else 's'}, "
                     f"{s.get('train_images')} train / {s.get('test_images')} test images of {s.get('dataset')}"
                     f"{' (quick smoke run)' if s.get('quick') else ''}", fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def plot_fitness(generations: Sequence[Mapping], ax=None, *, title: str = "Fitness per generation"):
    """Best and mean fitness (± std) per generation, and the best validation accuracy."""
    ax = _axes(ax)
    g = [r["generation"] for r in generations]
    mean = np.asarray([r["mean_fitness"] for r in generations])
    std = np.asarray([r["std_fitness"] for r in generations])
    ax.plot(g, [r["best_fitness"] for r in generations], marker="o", color=COLORS[0], label="best fitness")
    ax.plot(g, mean, marker=".", color=COLORS[1], label="mean fitness")
    ax.fill_between(g, mean - std, mean + std, color=COLORS[1], alpha=0.15)
    ax.plot(g, [r["best_val_accuracy"] for r in generations], ls="--", color=COLORS[2], label="best val accuracy")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness / accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_operators(generations: Sequence[Mapping], ax=None, *, title: str = "Regularisation operators"):
    """H_S and D_T of the best individual and their population means, with the lambdas."""
    ax = _axes(ax)
    g = [r["generation"] for r in generations]
    ax.plot(g, [r["spatial"] for r in generations], marker="o", color=COLORS[0], label="H_S (best)")
    ax.plot(g, [r["mean_spatial"] for r in generations], ls=":", color=COLORS[0], label="H_S (mean)")
    ax.plot(g, [r["temporal"] for r in generations], marker="o", color=COLORS[1], label="D_T (best)")
    ax.plot(g, [r["mean_temporal"] for r in generations], ls=":", color=COLORS[1], label="D_T (mean)")
    ax2 = ax.twinx()
    ax2.plot(g, [r["lambda_s"] for r in generations], color="0.5", lw=1, ls="--", label="lambda_S")
    ax2.plot(g, [r["lambda_t"] for r in generations], color="0.3", lw=1, ls="-.", label="lambda_T")
    ax2.set_ylabel("lambda")
    ax.set_xlabel("generation")
    ax.set_ylabel("operator value")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7)
    return ax


def plot_signal(signal: Mapping, ax=None, *, title: str = "Signal: two evaluations of a population"):
    """The fitness's signal per measured generation (``evolution.json``'s ``signal``,
    :func:`gsnn.evolution.signal.signal_summary`): the Spearman correlation of the two
    evaluations per term (solid, left axis) and the combined fitness's between/within
    variance ratio (dashed, right axis, log scale; 0.5 is pure noise)."""
    ax = _axes(ax)
    history = signal["history"]
    g = [r["generation"] for r in history]
    names = dict(fitness="F", accuracy_term="A", val_accuracy="val acc", val_loss="val loss", spatial="H_S",
                 temporal="D_T")
    terms = [t for t in names if history and t in history[0]["terms"]]
    for i, t in enumerate(terms):
        ax.plot(g, [r["terms"][t]["spearman"] for r in history], marker="o", ms=3, color=COLORS[i % len(COLORS)],
                lw=2.0 if t == "fitness" else 1.0, label=f"{names[t]} rho")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("generation")
    ax.set_ylabel("Spearman rank correlation")
    ratio = np.asarray([r["terms"]["fitness"]["variance_ratio"] for r in history], np.float64)
    ax2 = ax.twinx()
    ax2.plot(g, np.where(np.isfinite(ratio) & (ratio > 0), ratio, np.nan), color="0.3", ls="--", marker="x",
             label="F variance ratio")
    ax2.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax2.set_yscale("log")
    ax2.set_ylabel("between / within variance (F)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    lines, lines2 = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7)
    return ax


def plot_fitness_vs_trained(panels: Sequence[Mapping], path: str | os.PathLike, *, reference: float | None = None,
                            reference_label: str = "", xlabel: str = "fitness",
                            ylabel: str = "trained validation accuracy (%)") -> pathlib.Path:
    """Whether a search's fitness ranks what training then reaches: one scatter per
    horizon (``panels``: ``horizon``, ``fitness`` and ``trained`` lists of one length,
    ``rho`` and ``ci95`` [low, high] or ``None``), fitness on x, the trained accuracy in
    percent on y; ``reference`` (percent) a dashed line, e.g. the baseline row's. A panel's
    ``label`` replaces its "K = horizon" title (e.g. another quantity on x); its
    ``reference_x`` puts the reference on the x axis too (a star on the line)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], panels):
        ax.scatter(p["fitness"], p["trained"], s=18, color=COLORS[0])
        if reference is not None:
            ax.axhline(reference, color=COLORS[1], ls="--", lw=1.0, label=reference_label or None)
            if p.get("reference_x") is not None:
                ax.scatter([p["reference_x"]], [reference], marker="*", s=90, color=COLORS[1], zorder=3)
        ci = p.get("ci95")
        ax.set_title(f"{p.get('label') or 'K = ' + str(p['horizon'])}: rho {p['rho']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""),
                     fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    if reference is not None and reference_label:
        axes[0][0].legend(fontsize=7)
    return save(fig, path)


def plot_paired_arms(panels: Sequence[Mapping], path: str | os.PathLike, *,
                     ylabel: str = "test accuracy (%)") -> pathlib.Path:
    """A paired comparison per panel (e.g. one per budget): the arms on x, one line per
    seed joining that seed's arms (the pairing the statistics use), the mean of each arm a
    black bar. ``panels``: ``title`` and ``arms``, a list of ``name``, ``seeds`` and
    ``values`` (percent, one per seed)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 1.1 * max(len(p["arms"]) for p in panels) * len(panels), 3.6),
                             sharey=True, squeeze=False)
    for ax, p in zip(axes[0], panels):
        names = [a["name"] for a in p["arms"]]
        seeds = sorted({s for a in p["arms"] for s in a["seeds"]})
        for i, seed in enumerate(seeds):
            pts = [(x, a["values"][a["seeds"].index(seed)]) for x, a in enumerate(p["arms"]) if seed in a["seeds"]]
            ax.plot(*zip(*pts), marker="o", ms=4, lw=1, alpha=0.8, color=COLORS[i % len(COLORS)], label=f"seed {seed}")
        for x, a in enumerate(p["arms"]):
            ax.plot([x - 0.25, x + 0.25], [np.mean(a["values"])] * 2, color="k", lw=2)
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.set_title(p["title"], fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=7)
    return save(fig, path)


def plot_evolution(result: Mapping, path: str | os.PathLike) -> pathlib.Path:
    """``gsnn evolve``'s figure: (a) fitness per generation, (b) H_S and D_T per
    generation, (c) test accuracy vs parameters of the final variants, and (d) the
    fitness's signal (:func:`plot_signal`) where generations were measured (results
    written before the measurement existed have no ``signal``)."""
    signal = result.get("signal")
    measured = bool(signal and signal["history"])
    fig, axes = plt.subplots(1, 4 if measured else 3, figsize=(21 if measured else 16, 4.6))
    if measured:
        plot_signal(signal, axes[3], title="(d) Signal: rank correlation of two evaluations")
    plot_fitness(result["generations"], axes[0], title="(a) Fitness per generation")
    plot_operators(result["generations"], axes[1], title="(b) H_S and D_T per generation")
    final = result.get("final") or {}
    if final:
        plot_accuracy_vs_params([dict(label=name, params=v["params"], accuracy=v["test_accuracy"],
                                      compression=v.get("compression")) for name, v in final.items()],
                                axes[2], title="(c) Final variants: accuracy vs parameters")
    else:
        axes[2].axis("off")
    fig.suptitle(f"gsnn evolve: {result.get('name', '')}", fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def plot_ablation(runs: Sequence[Mapping], ax=None, *, target: float | None = None, title: str = "Operator ablation"):
    """An ablation (``experiments/ablation.py``): per arm, the best validation accuracy
    (fraction) per generation, mean over its seeds with a ± std band (``ddof = 1``), and the target as
    a dashed line. ``runs`` are dicts with ``arm`` and ``best_val_accuracy_per_generation``
    (generation 1 first)."""
    ax = _axes(ax)
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    for i, arm in enumerate(arms):
        curves = np.asarray([r["best_val_accuracy_per_generation"] for r in runs if r["arm"] == arm], np.float64)
        g = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(0)
        std = curves.std(0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)  # over seeds: a sample
        ax.plot(g, mean, marker="o", ms=3, color=COLORS[i % len(COLORS)], label=f"{arm} ({len(curves)} seeds)")
        ax.fill_between(g, mean - std, mean + std, color=COLORS[i % len(COLORS)], alpha=0.12)
    if target:
        ax.axhline(target, color="0.4", ls="--", lw=1, label=f"target {target:.3f}")
    ax.set_xlabel("generation")
    ax.set_ylabel("best validation accuracy (inner loop)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


__all__ = ["plot_ablation", "plot_paired_arms", "plot_demo", "plot_evolution", "plot_fitness", "plot_operators", "plot_signal", "plot_learning_curves", "plot_accuracy_vs_params", "plot_firing_rates", "save"]


def plot_study(rows: Sequence[Mapping], folder: str | os.PathLike) -> tuple[pathlib.Path, pathlib.Path]:
    """The CIFAR-10 study's two figures from its per-variant records
    (``experiments/cifar10_study.py``): accuracy (mean, ± std as error bars) against
    parameters, and the firing rate of every LIF layer per variant."""
    folder = pathlib.Path(folder)
    crowded = len(rows) > 5
    fig, ax = plt.subplots(figsize=(8.5, 4.5) if crowded else (6.5, 4.5))
    direct = next((r for r in rows if r["encoding"] == "direct"), None)
    if direct is not None:
        ax.axhline(100 * direct["test_accuracy_mean"], color="0.5", ls="--", lw=1, label="direct mean")
    for i, r in enumerate(rows):
        ax.errorbar([r["params"]], [100 * r["test_accuracy_mean"]], yerr=[100 * r["test_accuracy_std"]],
                    color=COLORS[i % len(COLORS)], capsize=4, lw=1.5)
    points = [dict(label=r["variant"], params=r["params"], accuracy=r["test_accuracy_mean"],
                   compression=r["compression"] or None,
                   marker={"direct": "D", "neuron": "s"}.get(r["encoding"], "o")) for r in rows]
    plot_accuracy_vs_params(points, ax, title="CIFAR-10, convnet_s T=4: accuracy vs parameters", legend=crowded)
    if direct is not None and not crowded:
        ax.legend(fontsize=8, loc="lower right")
    acc_png = save(fig, folder / "cifar10_accuracy_vs_params.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    plot_firing_rates({r["variant"]: r["firing_rates"] for r in rows}, ax,
                      title="CIFAR-10, convnet_s T=4: firing rate per LIF layer (test set)")
    return acc_png, save(fig, folder / "cifar10_firing_rates.png")
