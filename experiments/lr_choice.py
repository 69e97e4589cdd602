"""Is the study's shared learning rate each variant's own? The issue 11 recipe (SGD,
momentum 0.9, cosine, 10k images, 8 epochs) trains every variant at lr 0.1; this picks
each variant's peak learning rate on validation (seed 0) from a grid, since a generated
weight steps several times as far as a direct one at the same rate
(``experiments/effective_lr.py``).

    python experiments/lr_choice.py run --variants direct position_50_r2 --lrs 0.05 0.2 --bracket
    python experiments/lr_choice.py run --match --variants neuron_80_r2 --lrs 0.4   # steps matched to direct
    python experiments/lr_choice.py report   # results/lr_choice.json, .md and .png
    python experiments/lr_choice.py run --regime scarce_250 --variants direct --lrs 0.2 0.4 --bracket

``--match`` trains with per-array learning-rate scales (``train.lr_scale``) that bring
every layer's step at initialisation to a direct weight's at the same rate
(``gsnn.analysis.effective_lr.matching_scales``), so the encoded net can train at
direct's own rate; its runs sit under ``results/lr_choice/match_lr{LR}`` and its rows
are named ``<variant>+match``.

lr 0.1 is the study's own record of seed 0 (``results/cifar10_convnet_s``); every other
rate is a run of ``cifar10_study.py run --set train.learning_rate=LR`` under
``results/lr_choice/lr{LR}``. ``--regime scarce_250`` asks the same of the data-scarce
regime (``experiments/regimes.py``: its budget, its own runs at 0.1), under
``results/lr_choice/scarce_250/``. Validation accuracy only: the test accuracies these
records hold are not read here.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import cifar10_study as S  # noqa: E402
import effective_lr as EX  # noqa: E402
import jax  # noqa: E402
import regimes as R  # noqa: E402

from gsnn import config as cfgs  # noqa: E402
from gsnn.analysis import effective_lr as E  # noqa: E402
from gsnn.analysis import plots  # noqa: E402

OUT = pathlib.Path("experiments/results/lr_choice")
STUDY_LR = 0.1  # the recipe's (experiments/configs/convnet_s_cifar10_direct.py)
MATCH = "+match"  # the name suffix of a variant trained with matched steps
STUDY = "underfit_10k"  # the issue 11 study's regime, whose choices sit directly under OUT
TUNABLE = (STUDY, "scarce_250")  # the regimes a rate can be chosen in


def root(regime: str = STUDY) -> pathlib.Path:
    return OUT if regime == STUDY else OUT / regime


def folder(lr: float, match: bool = False, regime: str = STUDY) -> pathlib.Path:
    if match:
        return root(regime) / f"match_lr{lr:g}"
    if lr != STUDY_LR:
        return root(regime) / f"lr{lr:g}"
    return S.RESULTS if regime == STUDY else R.REGIMES[regime]["results"]


def budget(regime: str) -> list[str]:
    """The ``--budget`` of ``regime``'s runs (the study's is ``cifar10_study``'s default)."""
    return [] if regime == STUDY else ["--budget", *R.budget(regime, [0])]


def matched_scales(variant: str, seed: int) -> tuple[tuple[str, float], ...]:
    """``train.lr_scale`` for ``variant`` that brings every layer's ``self`` step
    multiplier to 1 (:func:`effective_lr.matching_scales`, four significant digits), at
    the initialisation ``effective_lr.py`` probes for ``seed`` (drawn with
    ``jax.random.key(seed)``, one isotropic probe per layer)."""
    cfg = cfgs.load_config(S.BASE, S.VARIANTS[variant] + S.BUDGET)
    variables, weights_of = EX.network(cfg.model, seed)
    probes = E.isotropic_probes(weights_of(variables["params"]), jax.random.key(seed + 3))
    scales = E.matching_scales(E.self_contributions(weights_of, variables["params"], probes))
    return tuple((a, float(f"{s:.4g}")) for a, s in sorted(scales.items()) if a != "weight" or s != 1.0)


def run_at(lr: float, variants: list[str], seed: int, match: bool = False, regime: str = STUDY) -> None:
    if lr == STUDY_LR and not match:
        print(f"lr {lr:g} is the {regime} regime's own run: skipped", flush=True)
        return
    out = folder(lr, match, regime)
    runs = pathlib.Path("runs/lr_choice") / ("" if regime == STUDY else regime) / out.name
    where = ["--results", str(out), "--runs", str(runs)] + budget(regime)
    if not match:
        S.main(["run", "--seeds", str(seed), "--variants", *variants, "--set", f"train.learning_rate={lr:g}"] + where)
        return
    for v in variants:  # each its own scales
        scale = matched_scales(v, seed)
        print(f"{v}{MATCH} seed {seed}: train.lr_scale={scale}", flush=True)
        S.main(["run", "--seeds", str(seed), "--variants", v, "--set", f"train.learning_rate={lr:g}",
                f"train.lr_scale={scale}"] + where)


def cmd_run(args) -> int:
    """The grid ``--lrs`` for every variant; with ``--bracket``, then twice the top rate
    for each variant whose best is still its highest, until none is (at most
    ``--max-doublings`` times)."""
    for lr in args.lrs:
        run_at(lr, args.variants, args.seed, args.match, args.regime)
    names = {v + (MATCH if args.match else ""): v for v in args.variants}
    for _ in range(args.max_doublings if args.bracket else 0):
        top = {names[r["variant"]]: max(float(k) for k in r["val_accuracy"]) for r in table(args.seed, args.regime)
               if r["variant"] in names and r["at_grid_edge"]
               and r["chosen_lr"] == max(float(k) for k in r["val_accuracy"])}
        if not top:
            break
        for lr in sorted(set(top.values())):
            run_at(2 * lr, [v for v, t in top.items() if t == lr], args.seed, args.match, args.regime)
    return 0


def table(seed: int = 0, regime: str = STUDY) -> list[dict]:
    """Per variant with a run at a rate other than the study's (and per matched variant
    with a run) in ``regime``: its validation accuracy at every rate measured (percent),
    the rate with the highest (``chosen``) and its gain over the regime's own run at 0.1."""
    lrs = sorted({STUDY_LR} | {float(p.name[2:]) for p in root(regime).glob("lr*") if p.is_dir()})
    matched = sorted(float(p.name[len("match_lr"):]) for p in root(regime).glob("match_lr*") if p.is_dir())
    rows = []
    for variant, match in [(v, False) for v in S.VARIANTS] + [(v, True) for v in S.VARIANTS]:
        val = {}
        for lr in matched if match else lrs:
            path = folder(lr, match, regime) / f"{variant}_s{seed}.json"
            if path.exists():
                rec = json.loads(path.read_text())
                val[lr] = None if rec.get("diverged") else 100 * rec["val_accuracy"]
        if len(val) < (1 if match else 2):
            continue
        finite = {lr: v for lr, v in val.items() if v is not None}
        chosen = max(finite, key=finite.get)
        study = folder(STUDY_LR, regime=regime) / f"{variant}_s{seed}.json"
        base = json.loads(study.read_text()) if study.exists() else None
        gain = None if base is None or base.get("diverged") else finite[chosen] - 100 * base["val_accuracy"]
        rows.append(dict(variant=variant + (MATCH if match else ""), seed=seed,
                         val_accuracy={f"{lr:g}": v for lr, v in val.items()}, chosen_lr=chosen,
                         gain_over_study_lr=gain, at_grid_edge=chosen in (min(val), max(val))))
    return rows


def cmd_report(args) -> int:
    rows, out = table(args.seed, args.regime), root(args.regime)
    if not rows:
        print(f"no variant has a run at a rate other than {STUDY_LR:g} under {out}", file=sys.stderr)
        return 2
    lrs = sorted({float(k) for r in rows for k in r["val_accuracy"]})
    cell = lambda v: "–" if v is None else f"{v:.2f}"
    lines = ["| variant | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | chosen | gain over 0.1 |",
             "|---|" + "---|" * (len(lrs) + 2)]
    for r in rows:
        vals = [cell(r["val_accuracy"].get(f"{lr:g}")) if f"{lr:g}" in r["val_accuracy"] else "" for lr in lrs]
        edge = " (grid edge)" if r["at_grid_edge"] else ""
        lines.append(f"| `{r['variant']}` | " + " | ".join(vals) + f" | {r['chosen_lr']:g}{edge} | "
                     f"{'–' if r['gain_over_study_lr'] is None else format(r['gain_over_study_lr'], '+.2f')} |")
    md = "\n".join(lines)
    print(md, flush=True)
    recipe = "issue 11 recipe" if args.regime == STUDY else f"the {args.regime} regime's recipe"
    command = "python experiments/lr_choice.py report" + ("" if args.regime == STUDY else f" --regime {args.regime}")
    (out / "lr_choice.md").write_text(md + "\n")
    (out / "lr_choice.json").write_text(json.dumps(dict(
        rows=rows, regime=args.regime, selected_on=f"validation accuracy, seed {args.seed}, {recipe} at each peak rate",
        command=command), indent=1))
    fig, ax = plots.plt.subplots(figsize=(5.2, 3.6))
    for i, r in enumerate(rows):
        pts = sorted((float(k), v) for k, v in r["val_accuracy"].items() if v is not None)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=plots.COLORS[i % len(plots.COLORS)],
                label=r["variant"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("peak learning rate (SGD, cosine)")
    ax.set_ylabel(f"validation accuracy (%), seed {args.seed}")
    ax.axvline(STUDY_LR, color="0.6", ls="--", lw=1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    print(f"wrote {plots.save(fig, out / 'lr_choice.png')}", flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--variants", nargs="+", required=True, choices=list(S.VARIANTS))
    r.add_argument("--lrs", type=float, nargs="+", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--bracket", action="store_true", help="double the top rate while it is the best")
    r.add_argument("--max-doublings", type=int, default=3)
    r.add_argument("--match", action="store_true", help="per-array rates that match each layer's step to direct's")
    r.set_defaults(func=cmd_run)
    p = sub.add_parser("report")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_report)
    for q in (r, p):
        q.add_argument("--regime", choices=TUNABLE, default=STUDY, help="whose recipe and runs at 0.1")
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
