"""Where the genetic encoding wins (issue 25, DESIGN 1.7): convnet_s on CIFAR-10 in three
regimes, each variant paired by seed with direct width 1 of the same regime and with
the direct net narrowed to its size.

    python experiments/regimes.py epochs                       # scarce_250: pick the epoch budget (direct, seed 0)
    python experiments/regimes.py run --regime scarce_250 --seeds 0 1 2
    python experiments/regimes.py run --regime wide --seeds 0 --variants wide_neuron_50_r2 wide_position_50_r2
    python experiments/regimes.py run --regime underfit_10k --seeds 3 4 5
    python experiments/regimes.py run --regime underfit_10k_lr --seeds 0 1 2   # each at its own lr
    python experiments/regimes.py run --regime scarce_250_lr --seeds 0 1 2 --variants direct position_50_r2+match
    python experiments/regimes.py report                       # experiments/results/regimes.json (+ .md)

Regimes (every one trains with the study recipe of ``experiments/cifar10_study.py``;
runs resume from their checkpoints and are skipped once their record exists):

* ``underfit_10k``: the issue 11 study (10,000 training images, 8 epochs). Its records
  are the study's own (``experiments/results/cifar10_convnet_s``); new seeds also
  evaluate the training subset at the end (``train.final_train_eval``).
* ``wide``: the same budget, encoded nets at width 1.5 (``wide_*``) and 2.0 (``wide2_*``,
  neuron mode) with as many parameters as the narrowed direct nets; paired with the
  study's direct width 1.
* ``underfit_10k_lr``: the same, each variant at its own peak learning rate, chosen on
  validation at seed 0 from a grid (``experiments/lr_choice.py``; the study trains all
  at 0.1); its seed 0 is the run that chose it.
* ``scarce_250_lr``: the same for ``scarce_250`` (``lr_choice.py --regime scarce_250``).
* ``scarce_250``: 250 training images per class, a 5,000-image validation split from
  the images outside them, evaluated every 5 epochs, trained for the epoch budget that
  ``epochs`` chose on validation (separate direct runs of seed 0: with a cosine schedule,
  epoch e of a long run is not the end of an e-epoch run).

Choices (the epoch budget, the wide 50% mode) are made on validation; the test split is
read once per run, at its end (DESIGN 1.6).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import cifar10_study as S  # noqa: E402

from gsnn.analysis.stats import paired, verdict  # noqa: E402
from gsnn.runtime.provenance import UNRECORDED, mixed  # noqa: E402

OUT = pathlib.Path("experiments/results/regimes")
RUNS = pathlib.Path("runs/regimes")
SCARCE_EPOCHS = OUT / "scarce_250_epochs.json"
EPOCH_CANDIDATES = (50, 100, 150)
SCARCE = ["data.train_per_class=250", "data.val_per_class=500", "data.test_per_class=0", "train.log_every=0",
          "train.eval_every=5", "train.final_train_eval=true"]
TABLE_VARIANTS = ["direct", "direct_w065", "direct_w037", "position_50_r2", "neuron_50_r2", "neuron_80_r2"]
# encoded rows trained with their steps matched to direct's (lr_choice.py run --match)
MATCHED = ["position_50_r2+match"]
REGIMES = {
    "underfit_10k": dict(results=S.RESULTS, variants=TABLE_VARIANTS),
    "wide": dict(results=OUT / "wide", variants=["wide_neuron_50_r2", "wide_position_50_r2", "wide_neuron_80_r2",
                                                  "wide2_neuron_50_r2", "wide2_neuron_80_r2"],
                 baselines=S.RESULTS),  # direct width 1 and the narrowed nets: the study's records
    "scarce_250": dict(results=OUT / "scarce_250", variants=TABLE_VARIANTS),
    # a regime with each variant at its own peak learning rate, chosen on validation at
    # seed 0 in the regime it is tuned from (experiments/lr_choice.py); seed 0 is that
    # choice's own run
    "underfit_10k_lr": dict(results=OUT / "underfit_10k_lr", variants=TABLE_VARIANTS + MATCHED,
                            tuned_from="underfit_10k"),
    "scarce_250_lr": dict(results=OUT / "scarce_250_lr", variants=TABLE_VARIANTS + MATCHED, tuned_from="scarce_250"),
}


def scarce_budget(epochs: int) -> list[str]:
    return SCARCE + [f"train.epochs={epochs}"]


def budget(regime: str, seeds: list[int]) -> list[str]:
    """The ``--set`` budget every variant of ``regime`` trains with (a tuned regime's is
    the one it is tuned from, and its learning rates are each variant's own)."""
    regime = REGIMES[regime].get("tuned_from", regime)
    if regime == "wide":
        return list(S.BUDGET)
    if regime == "underfit_10k":
        # the study's budget; its seeds 0-2 ran before the training subset was evaluated
        return list(S.BUDGET) + (["train.final_train_eval=true"] if min(seeds) >= 3 else [])
    if not SCARCE_EPOCHS.is_file():
        raise SystemExit(f"{SCARCE_EPOCHS} is missing: run `python experiments/regimes.py epochs` first, which "
                         "chooses the scarce regime's epoch budget on validation")
    return scarce_budget(json.loads(SCARCE_EPOCHS.read_text())["chosen_epochs"])


def cmd_epochs(args) -> int:
    """Direct, seed 0, one run per candidate budget; the budget of the best final
    validation accuracy is chosen (DESIGN 1.6: never the test split)."""
    rows = []
    for e in args.candidates:
        res = OUT / "scarce_250_epochs" / f"e{e}"
        S.main(["run", "--seeds", "0", "--variants", "direct", "--budget", *scarce_budget(e), "--results", str(res),
                "--runs", str(RUNS / f"scarce_250_epochs_e{e}")])
        r = json.loads((res / "direct_s0.json").read_text())
        rows.append(dict(epochs=e, val_accuracy=r["val_accuracy"], train_val_gap=r.get("train_val_gap"),
                         command=r["command"], wall_s=r["wall_s"]))
        print(f"== scarce_250 direct, {e} epochs: val {r['val_accuracy']:.4f}, gap {r.get('train_val_gap')}",
              flush=True)
    best = max(rows, key=lambda r: r["val_accuracy"])
    SCARCE_EPOCHS.parent.mkdir(parents=True, exist_ok=True)
    SCARCE_EPOCHS.write_text(json.dumps(dict(chosen_epochs=best["epochs"], selected_on="validation (direct, seed 0)",
                                             candidates=rows), indent=1))
    print(f"chose {best['epochs']} epochs (val {best['val_accuracy']:.4f}); wrote {SCARCE_EPOCHS}")
    return 0


def chosen_lrs(variants: list[str], tuned_from: str = "underfit_10k") -> dict[str, float]:
    """Each variant's peak learning rate from ``lr_choice.json`` of regime ``tuned_from``;
    stops where one is missing or was chosen at the top of its grid (the optimum not
    bracketed)."""
    import lr_choice as LC

    path = LC.root(tuned_from) / "lr_choice.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python experiments/lr_choice.py run --regime {tuned_from}` and "
                         f"`report --regime {tuned_from}` first")
    rows = {r["variant"]: r for r in json.loads(path.read_text())["rows"]}
    missing = [v for v in variants if v not in rows]
    edge = [v for v in variants if v in rows and rows[v]["at_grid_edge"]
            and rows[v]["chosen_lr"] == max(float(k) for k in rows[v]["val_accuracy"])]
    if missing or edge:
        raise SystemExit(f"no learning rate chosen for {missing}; chosen at the top of the grid (extend it with "
                         f"`lr_choice.py run --lrs ...`) for {edge}")
    return {v: rows[v]["chosen_lr"] for v in variants}


def cmd_run_lr(args) -> int:
    """A tuned regime (``underfit_10k_lr``, ``scarce_250_lr``): each variant trained at its
    own learning rate; seed 0 is the run that chose it (copied from the lr-choice records,
    not trained again), and a variant whose rate is 0.1 reuses the untuned regime's runs
    of every seed it has. A ``<variant>+match`` row trains with the per-array rates that
    match its steps to direct's (``lr_choice.matched_scales``, computed at each seed's
    initialisation)."""
    import lr_choice as LC

    reg = REGIMES[args.regime]
    tuned = reg["tuned_from"]
    reg["results"].mkdir(parents=True, exist_ok=True)
    for variant, lr in chosen_lrs(args.variants or reg["variants"], tuned).items():
        base, match = variant.removesuffix(LC.MATCH), variant.endswith(LC.MATCH)
        seeds = [s for s in args.seeds if s != 0]
        at = LC.folder(lr, match, tuned)
        if 0 in args.seeds:
            copy_record(at / f"{base}_s0.json", reg["results"] / f"{variant}_s0.json", variant)
        if lr == LC.STUDY_LR and not match:  # the untuned regime's own runs are these: reused, not retrained
            done = [s for s in seeds if (at / f"{base}_s{s}.json").is_file()]
            for s in done:
                copy_record(at / f"{base}_s{s}.json", reg["results"] / f"{variant}_s{s}.json", variant)
            seeds = [s for s in seeds if s not in done]
        raw = reg["results"] / "match" if match else reg["results"]
        for group in [[s] for s in seeds] if match else ([seeds] if seeds else []):  # matched: own scales per seed
            extra = [f"train.lr_scale={LC.matched_scales(base, group[0])}"] if match else []
            S.main(["run", "--seeds", *map(str, group), "--variants", base, "--budget", *budget(args.regime, group),
                    "--set", f"train.learning_rate={lr:g}", *extra, "--results", str(raw),
                    "--runs", str(RUNS / args.regime / at.name)])
            if match:
                copy_record(raw / f"{base}_s{group[0]}.json", reg["results"] / f"{variant}_s{group[0]}.json",
                            variant)
    return 0


def copy_record(src: pathlib.Path, dst: pathlib.Path, variant: str) -> None:
    """``src``'s run record as ``dst``, named ``variant`` (once: an existing ``dst`` is kept)."""
    if dst.exists():
        return
    if not src.is_file():
        raise SystemExit(f"{src} is missing: the run it records has not finished")
    rec = json.loads(src.read_text())
    rec["variant"] = variant
    dst.write_text(json.dumps(rec, indent=1))
    print(f"{variant}: the record {src}", flush=True)


def cmd_run(args) -> int:
    reg = REGIMES[args.regime]
    if "tuned_from" in reg:
        return cmd_run_lr(args)
    variants = args.variants or reg["variants"]
    return S.main(["run", "--seeds", *map(str, args.seeds), "--variants", *variants,
                   "--budget", *budget(args.regime, args.seeds), "--results", str(reg["results"]),
                   "--runs", str(RUNS / args.regime)])


def _records(folder: pathlib.Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*_s*.json"))]


def _by_seed(records: list[dict], variant: str, key: str = "test_accuracy") -> dict[int, float]:
    return {r["seed"]: r[key] for r in records if r["variant"] == variant and not r.get("diverged")
            and r.get(key) is not None}


def regime_rows(regime: str) -> list[dict]:
    """One row per variant of ``regime`` with at least one finished run: accuracy per
    seed, paired differences (n, mean, std ddof 1, 95% interval, p) against direct width
    1 of the regime and against the narrowed direct net of its size, and its costs."""
    reg = REGIMES[regime]
    own = _records(reg["results"])
    base = _records(reg.get("baselines", reg["results"]))
    direct = _by_seed(base, "direct")
    rows = []
    for name in reg["variants"]:
        runs = sorted((r for r in own if r["variant"] == name and not r.get("diverged")), key=lambda r: r["seed"])
        if not runs:
            continue
        first = runs[0]
        acc = {r["seed"]: r["test_accuracy"] for r in runs}
        narrowed = None
        if first["encoding"] != "direct":
            sizes = {v: next(r["params"] for r in base if r["variant"] == v) for v in ("direct_w065", "direct_w037")
                     if any(r["variant"] == v for r in base)}
            close = [v for v, n in sizes.items() if abs(n / first["params"] - 1) <= S.EQUAL_SIZE_TOLERANCE]
            narrowed = min(close, key=lambda v: abs(sizes[v] - first["params"])) if close else None
        vs_direct = paired(acc, direct) if name != "direct" else None
        vs_narrowed = paired(acc, _by_seed(base, narrowed)) if narrowed else None
        gaps = [r["train_val_gap"] for r in runs if r.get("train_val_gap") is not None]
        direct_params = next((r["params"] for r in base if r["variant"] == "direct"), None)
        prov = mixed(runs)
        mean = lambda key: statistics.mean(r[key] for r in runs) if all(r.get(key) is not None for r in runs) else None
        rows.append(dict(
            regime=regime, variant=name, encoding=first["encoding"], rules=first.get("rules", 1),
            genes=first["genes"], width=first.get("width", 1.0), params=first["params"], direct_params=direct_params,
            compression=None if not direct_params else 1 - first["params"] / direct_params,
            seeds=list(acc), test_accuracies=list(acc.values()),
            test_accuracy_mean=statistics.mean(acc.values()),
            test_accuracy_std=statistics.stdev(acc.values()) if len(acc) > 1 else None,
            val_accuracy_mean=mean("val_accuracy"), epochs=first["epochs"],
            paired_delta_n=vs_direct.n if vs_direct else None,
            paired_delta_mean=vs_direct.mean if vs_direct else None,
            paired_delta_std=vs_direct.std if vs_direct else None,
            paired_delta_ci95=list(vs_direct.ci95) if vs_direct and vs_direct.ci95 else None,
            paired_delta_p=vs_direct.p if vs_direct else None,
            paired_delta_verdict=verdict(vs_direct) if vs_direct else None,
            narrowed_direct=narrowed,
            paired_delta_vs_narrowed_n=vs_narrowed.n if vs_narrowed else None,
            paired_delta_vs_narrowed_mean=vs_narrowed.mean if vs_narrowed else None,
            paired_delta_vs_narrowed_std=vs_narrowed.std if vs_narrowed else None,
            paired_delta_vs_narrowed_ci95=list(vs_narrowed.ci95) if vs_narrowed and vs_narrowed.ci95 else None,
            paired_delta_vs_narrowed_p=vs_narrowed.p if vs_narrowed else None,
            paired_delta_vs_narrowed_verdict=verdict(vs_narrowed) if vs_narrowed else None,
            train_val_gap=statistics.mean(gaps) if gaps else None, train_val_gap_seeds=len(gaps),
            macs=mean("macs"), acs=mean("acs"), energy_uj=mean("energy_uj"),
            energy_uj_generated_once=mean("energy_uj_generated_once"),
            weight_read_bytes_generated_once=mean("weight_read_bytes_generated_once"),
            weight_read_bytes_per_inference=mean("weight_read_bytes_per_inference"),
            epoch_seconds=mean("epoch_seconds"),
            data_fingerprints=[r.get("data_fingerprint", UNRECORDED) for r in runs],
            commands=[r["command"] for r in runs], commits=prov["commits"], machines=prov["machines"],
        ))
    return rows


def _pct(x, sign=False):
    return "–" if x is None else f"{100 * x:{'+' if sign else ''}.2f}"


def _ci(ci):
    return "–" if ci is None else f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"


def markdown(rows: list[dict]) -> str:
    """One table per regime; a note where a table mixes commits or machines."""
    out = []
    for regime in REGIMES:
        rs = [r for r in rows if r["regime"] == regime]
        if not rs:
            continue
        out += [f"### {regime}", "",
                "| variant | width | g × R | params | fewer than direct | n | test % (mean ± std) | Δ vs direct "
                "[95% CI], p | narrowed direct | Δ vs narrowed [95% CI], p | train − val gap | step ms |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rs:
            gr = "–" if r["encoding"] == "direct" else f"{r['genes']} × {r['rules']}"
            d = ("–" if r["paired_delta_mean"] is None else
                 f"{_pct(r['paired_delta_mean'], True)} {_ci(r['paired_delta_ci95'])}"
                 + ("" if r["paired_delta_p"] is None else f", p {r['paired_delta_p']:.3f}"))
            dn = ("–" if r["paired_delta_vs_narrowed_mean"] is None else
                  f"{_pct(r['paired_delta_vs_narrowed_mean'], True)} {_ci(r['paired_delta_vs_narrowed_ci95'])}"
                  + ("" if r["paired_delta_vs_narrowed_p"] is None else f", p {r['paired_delta_vs_narrowed_p']:.3f}"))
            fewer = "–" if r["compression"] is None else f"{r['compression']:.1%}"
            step = "–" if r.get("step_ms") is None else f"{r['step_ms']:.0f}"
            out.append(f"| {r['variant']} | {r['width']} | {gr} | {r['params']:,} | {fewer} | "
                       f"{len(r['seeds'])} | {_pct(r['test_accuracy_mean'])} ± {_pct(r['test_accuracy_std'])} | {d} | "
                       f"{r['narrowed_direct'] or '–'} | {dn} | {_pct(r['train_val_gap'], True)} | "
                       f"{step} |")
        out += ["", costs(rs)]
        commits = sorted({c for r in rs for c in r["commits"]})
        machines = sorted({m for r in rs for m in r["machines"]})
        out.append("")
        if len(commits) > 1 or len(machines) > 1:
            out.append(f"This table mixes {len(commits)} commits ({', '.join(c[:10] for c in commits)}) and "
                       f"{len(machines)} machines ({'; '.join(machines)}).")
            out.append("")
    return "\n".join(out)


def costs(rows: list[dict]) -> str:
    """The costs beside the accuracies: per inference (batch 1, the mean over seeds of
    the measured firing), synaptic MACs (``W``'s generation counted at every inference)
    and ACs, energy with each ``W`` generated once at load and generated at every
    inference, the weights read (kB) in both conventions, and the training step."""
    num = lambda x, f: "–" if x is None else format(x, f)
    lines = ["| variant | params | M MACs (W per inference) | M ACs | energy µJ (W once / per inference) | weights read kB (once / "
             "per inference) | step ms |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        kb = lambda key: None if r.get(key) is None else r[key] / 1e3
        lines.append(f"| {r['variant']} | {r['params']:,} | {num(r['macs'] and r['macs'] / 1e6, '.2f')} | "
                     f"{num(r['acs'] and r['acs'] / 1e6, '.2f')} | {num(r['energy_uj_generated_once'], '.2f')} / "
                     f"{num(r['energy_uj'], '.2f')} | {num(kb('weight_read_bytes_generated_once'), '.0f')} / "
                     f"{num(kb('weight_read_bytes_per_inference'), '.0f')} | {num(r.get('step_ms'), '.0f')} |")
    return "\n".join(lines)


STEP_TIMES = OUT / "step_times.json"


def _bench_settings(variant: str) -> dict:
    """``gsnn bench`` settings of a study variant (mode, encoding, genes, rules, width,
    read-out), read from its overrides."""
    kv = dict(o.split("=", 1) for o in S.VARIANTS[variant])
    enc = kv.get("model.genetic.encoding", "direct")
    return dict(mode="direct" if enc == "direct" else "genetic", encoding=enc if enc != "direct" else "position",
                genes=int(kv["model.genetic.genes"]) if "model.genetic.genes" in kv else None,
                rules=int(kv.get("model.genetic.rules", 1)), width=float(kv.get("model.width", 1.0)),
                last_direct=kv.get("model.genetic.last_direct", "false") == "true")


def cmd_bench(args) -> int:
    """The training step time of each variant (``gsnn bench``'s timer: median of
    ``--steps`` steps after warm-up, batch 128, T = 4), beside accuracy in the report.
    Measure with nothing else running; compare within one sitting."""
    from gsnn import bench as B
    from gsnn.runtime.provenance import provenance

    rows = {}
    for v in args.variants:
        st = _bench_settings(v)
        r = B.run_workload("convnet_s", st["mode"], st["genes"], encoding=st["encoding"], rules=st["rules"],
                           width=st["width"], last_direct=st["last_direct"], n_timed=args.steps, batch=128, T=4)
        rows[v] = dict(step_ms=r.ms_median, samples_per_s=r.samples_per_s, settings=st,
                       command=f"gsnn bench --workload convnet_s --mode {st['mode']}"
                               + (f" --encoding {st['encoding']} --genes {st['genes']} --rules {st['rules']}"
                                  if st["mode"] == "genetic" else "")
                               + f" --width {st['width']}" + (" --last-direct" if st["last_direct"] else ""))
        print(f"{v}: {r.ms_median:.0f} ms/step", flush=True)
    STEP_TIMES.parent.mkdir(parents=True, exist_ok=True)
    STEP_TIMES.write_text(json.dumps(dict(rows=rows, provenance=provenance()), indent=1))
    print(f"wrote {STEP_TIMES}")
    return 0


def cmd_report(args) -> int:
    rows = [r for regime in REGIMES for r in regime_rows(regime)]
    steps = json.loads(STEP_TIMES.read_text())["rows"] if STEP_TIMES.is_file() else {}
    from lr_choice import MATCH

    for r in rows:  # a matched row's network is its variant's: the same step
        r["step_ms"] = steps.get(r["variant"].removesuffix(MATCH), {}).get("step_ms")
    out = pathlib.Path(args.out)
    out.write_text(json.dumps(rows, indent=1))
    md = markdown(rows)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("epochs", help="choose the scarce regime's epoch budget on validation")
    e.add_argument("--candidates", type=int, nargs="+", default=list(EPOCH_CANDIDATES))
    e.set_defaults(func=cmd_epochs)
    r = sub.add_parser("run")
    r.add_argument("--regime", choices=list(REGIMES), required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--variants", nargs="*", default=None)
    r.set_defaults(func=cmd_run)
    b = sub.add_parser("bench", help="training step time of each variant (gsnn bench), for the report")
    b.add_argument("--variants", nargs="+", default=["direct", "direct_w065", "direct_w037", "position_50_r2",
                                                     "neuron_50_r2", "neuron_80_r2", *REGIMES["wide"]["variants"]])
    b.add_argument("--steps", type=int, default=5)
    b.set_defaults(func=cmd_bench)
    p = sub.add_parser("report")
    p.add_argument("--out", default="experiments/results/regimes.json")
    p.set_defaults(func=cmd_report)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
