"""The ``gsnn`` command. It only parses arguments and dispatches to the library.

    gsnn params --arch resnet19 --num-classes 10 --encoding position --genes 96
    gsnn train --config demo_neuron_r2 [--set train.epochs=5 ...] [--workdir DIR | --resume DIR]
    gsnn evolve --config evolve_demo [--set evolve.search.population=32 ...] [--workdir DIR | --resume DIR]
    gsnn demo [--out gsnn-demo] [--epochs N] [--quick] [--evolve]
    gsnn eval --workdir runs/a runs/b [--robustness] [--json PATH]
    gsnn bench --workload w1|w2|convnet_s [--mode direct|genetic] [--genes G] [--json PATH]

``train`` and ``evolve`` join a multi-process job when ``JAX_NUM_PROCESSES`` > 1 (or a
SLURM/MPI/TPU-pod launcher) describes one (:func:`gsnn.runtime.distributed.join`).

Every subcommand prints an aligned table and, with ``--json PATH``, writes its result as
JSON. Bad input (an unknown name, a missing file, a malformed value) prints
``error: <message>`` and exits with status 2.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import pathlib
import sys

from gsnn import bench as B
from gsnn import config as cfgs
from gsnn import data as gsnn_data
from gsnn import demo as demo_lib
from gsnn import evolution as EV
from gsnn import training
from gsnn.analysis import energy as E
from gsnn.analysis import plots
from gsnn.analysis import robustness as R
from gsnn.analysis import tables as T
from gsnn.config import GeneticConfig, ModelConfig
from gsnn.core.conv import CONV_IMPLS
from gsnn.core.genetic import EXECUTIONS
from gsnn.data import DataError
from gsnn.nn import networks as M
from gsnn.runtime import distributed
from gsnn.runtime.checkpoint import CheckpointError
from gsnn.runtime.interrupt import RunInterrupted
from gsnn.runtime.records import write_json

EXIT_BAD_INPUT = 2


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _write_json(path: str | None, obj) -> None:
    write_json(path, obj, announce=True)


def _parse_shape(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"--input-shape must be H,W,C with positive integers (e.g. 32,32,3), got {text!r}")
    return shape


# --------------------------------------------------------------------------------------
# gsnn params
# --------------------------------------------------------------------------------------


def params_report(arch: str, num_classes: int, encoding: str = "direct", genes: int | None = None,
                  first_direct: bool = False, last_direct: bool = False, width: float = 1.0,
                  input_shape: tuple[int, int, int] | None = None, rules: int = 1,
                  allocation: tuple[tuple[int, ...], ...] | None = None,
                  hidden: tuple[int, ...] | None = None) -> dict:
    """Parameter counts of an architecture, direct and encoded (no computation); with
    ``allocation`` (per encoded layer, the genes of each active rule; ``genes`` and
    ``rules`` the maxima), of the network that allocation masks (DESIGN 1.3);
    ``hidden``: the MLP's hidden sizes (default: the model's)."""
    if encoding != "direct" and genes is None:
        raise ValueError(f"--genes is required for encoding {encoding!r}")
    genetic = GeneticConfig(encoding=encoding, genes=int(genes or 0), rules=rules, first_direct=first_direct,
                            last_direct=last_direct)
    sizes = {} if hidden is None else dict(hidden=tuple(hidden))
    cfg = ModelConfig(arch=arch, num_classes=num_classes, width=width, genetic=genetic, **sizes).validate()
    shape = tuple(input_shape or M.default_input_shape(arch))
    if allocation is not None:
        layout = EV.allocation.make_layout(genetic, *M.describe(M.build_model(cfg), shape))
        layer_genes = EV.allocation.layer_genes(EV.allocation.from_counts(allocation, layout), layout)
        cfg = ModelConfig(arch=arch, num_classes=num_classes, width=width, **sizes,
                          genetic=dataclasses.replace(genetic, layer_genes=layer_genes)).validate()
    rep = E.parameter_report(*M.describe(M.build_model(cfg), shape))
    out = rep.as_dict()
    if allocation is not None:
        out["allocation"] = {name: list(g) for name, g in cfg.genetic.layer_genes if not name.startswith("pop_")}
    out.update(arch=arch, encoding=encoding, genes=genetic.genes if encoding != "direct" else 0,
               num_classes=num_classes, width=width, input_shape=list(shape),
               first_direct=first_direct, last_direct=last_direct)
    return out


def cmd_params(args) -> int:
    rep = params_report(args.arch, args.num_classes, args.encoding, args.genes, args.first_direct,
                        args.last_direct, args.width, _parse_shape(args.input_shape), args.rules,
                        ast.literal_eval(args.allocation) if args.allocation else None,
                        tuple(int(h) for h in args.hidden.split(",") if h) if args.hidden else None)
    print(T.params_table(rep))
    _write_json(args.json, rep)
    return 0


# --------------------------------------------------------------------------------------
# gsnn train
# --------------------------------------------------------------------------------------


def _check_resumable(workdir: pathlib.Path) -> None:
    if not workdir.is_dir():
        raise FileNotFoundError(f"--resume {workdir}: no such directory")
    ckpt = workdir / "checkpoints"
    has_ckpt = ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())
    if not has_ckpt and not (workdir / "config.json").is_file():
        raise FileNotFoundError(f"--resume {workdir}: not a training workdir (it holds neither "
                                f"checkpoints/<epoch> nor config.json)")


def train_config(config: str | None, overrides: list[str], resume: str | None) -> cfgs.Config:
    """The config of ``gsnn train``: by name/path, or the resumed workdir's own."""
    if config is not None:
        return cfgs.load_config(config, overrides)
    if resume is None:
        raise ValueError("gsnn train needs --config NAME_OR_PATH (or --resume DIR of an earlier run); "
                         f"configs found: {cfgs.available_configs()}")
    cfg_file = pathlib.Path(resume) / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"--resume {resume} holds no config.json; pass --config too")
    cfg = cfgs.read_config_file(cfg_file)
    return cfgs.apply_overrides(cfg, overrides).validate()


def cmd_train(args) -> int:
    if args.resume is not None:
        _check_resumable(pathlib.Path(args.resume))
        if args.workdir is not None and pathlib.Path(args.workdir).resolve() != pathlib.Path(args.resume).resolve():
            raise ValueError(f"--workdir {args.workdir} and --resume {args.resume} differ; --resume sets the workdir")
    if distributed.multiprocess():
        raise ValueError(f"gsnn train runs in one process, but this job has {distributed.process_count()} "
                         f"(JAX_NUM_PROCESSES or a cluster launcher): training is not data-parallel across "
                         f"processes. Start it as one process per host (each uses its own devices), or use "
                         f"gsnn evolve, whose final variants every process of a job trains (docs/MULTIHOST.md)")
    cfg = train_config(args.config, args.overrides, args.resume)
    workdir = args.resume or args.workdir or str(pathlib.Path("runs") / cfg.name)
    result = training.train_and_evaluate(cfg, workdir, progress=not args.quiet)
    result = {k: v for k, v in result.items() if k != "state"}
    print()
    print(T.train_table(result))
    print(f"workdir {workdir}")
    _write_json(args.json, result)
    return 0


# --------------------------------------------------------------------------------------
# gsnn demo
# --------------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    result = demo_lib.run_demo(args.out, epochs=args.epochs, quick=args.quick, progress=not args.quiet,
                               evolve=args.evolve)
    print()
    print(demo_lib.demo_table(result))
    print(f"wrote {result['json']} and {result['png']}")
    _write_json(args.json, result)
    return 0


# --------------------------------------------------------------------------------------
# gsnn evolve
# --------------------------------------------------------------------------------------


def cmd_evolve(args) -> int:
    if args.resume is not None:
        if not pathlib.Path(args.resume).is_dir():
            raise FileNotFoundError(f"--resume {args.resume}: no such run folder")
        if args.workdir is not None and pathlib.Path(args.workdir).resolve() != pathlib.Path(args.resume).resolve():
            raise ValueError(f"--workdir {args.workdir} and --resume {args.resume} differ; --resume sets the workdir")
    if args.config is None:
        raise ValueError("--config is required (a name such as evolve_demo, or a .py path)")
    cfg = cfgs.load_config(args.config, args.overrides)
    workdir = pathlib.Path(args.resume or args.workdir or pathlib.Path("runs") / cfg.name)
    result = EV.run_evolution(cfg, workdir, progress=not args.quiet)
    # JSON and plots: process 0 of a job (write_json checks it itself)
    png = plots.plot_evolution(result, workdir / "evolution.png") if distributed.is_primary() else None
    print()
    print(T.evolution_table(result))
    print(f"workdir {workdir}" + (f"; plot {png}" if png else ""))
    _write_json(args.json, result)
    _write_json(str(workdir / "evolution.json"), result)
    return 0


# --------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------


def _add_run_arguments(p: argparse.ArgumentParser, workdir_holds: str, quiet_help: str) -> None:
    """The arguments ``train`` and ``evolve`` share."""
    p.add_argument("--config", default=None, help="config name (built-in or experiments/configs) or .py path")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config fields (dotted keys); smoke=true shrinks to a smoke test")
    p.add_argument("--workdir", default=None, help=f"{workdir_holds} (default runs/<config name>)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in this workdir")
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--quiet", action="store_true", help=quiet_help)


# --------------------------------------------------------------------------------------
# gsnn eval
# --------------------------------------------------------------------------------------


def cmd_eval(args) -> int:
    workdirs = list(args.workdir or [])
    workdirs += [str(pathlib.Path("runs") / cfgs.load_config(c).name) for c in args.config or []]
    if not workdirs:
        raise ValueError("gsnn eval needs --workdir DIR ... (runs of gsnn train) or --config NAME ...")
    labels = args.labels or [pathlib.Path(w).name for w in workdirs]
    if len(labels) != len(workdirs):
        raise ValueError(f"--labels gives {len(labels)} names for {len(workdirs)} runs")
    reports, plain = {}, {}
    for label, wd in zip(labels, workdirs):
        cfg, state, ds = training.load_trained(wd)
        mean, std = gsnn_data.stats_for(ds.name)
        steps = training.make_steps(cfg, 1, mean, std, ds.image_shape)
        ev = training.evaluate_batches(steps, state.params, state.batch_stats, ds.test_batches(cfg.train.eval_batch_size),
                                       key=training.eval_key(cfg.seed), batch_size=cfg.train.eval_batch_size)
        plain[label] = dict(workdir=wd, test_accuracy=ev["accuracy"], test_top5=ev["top5"])
        print(f"{label}: test accuracy {100 * ev['accuracy']:.2f}% (top-5 {100 * ev['top5']:.2f}%) [{wd}]", flush=True)
        if args.robustness:
            reports[label] = R.robustness_report(cfg, state, ds, seed=args.seed)
    out = dict(runs=plain)
    if args.robustness:
        print()
        print(R.robustness_table(reports))
        png = R.plot_robustness(reports, args.plot)
        print(f"wrote {png}")
        out["robustness"] = reports
    _write_json(args.json, out)
    return 0


# --------------------------------------------------------------------------------------
# gsnn bench
# --------------------------------------------------------------------------------------


def cmd_bench(args) -> int:
    rows = []
    print(B.HEADER)
    for workload in args.workload:
        for mode in args.mode:
            r = B.run_workload(workload, mode, args.genes, encoding=args.encoding, execution=args.execution,
                               input_mode=args.input, n_timed=args.steps, n_warm=args.warmup,
                               remat=args.remat, conv_impl=args.conv_impl, width=args.width, rules=args.rules,
                               last_direct=args.last_direct)
            rows.append(r.asdict())
            print(B.format_row(r), flush=True)
    out = rows[0] if len(rows) == 1 else dict(results=rows)
    _write_json(args.json, {**out, "command": "gsnn " + " ".join(args.argv)})
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gsnn", description="Genetically encoded spiking neural networks.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{params,train,evolve,demo,eval,bench}")

    p = sub.add_parser("params", help="parameter counts and compression of an architecture")
    p.add_argument("--arch", required=True, help="architecture name (e.g. convnet_s, resnet19)")
    p.add_argument("--num-classes", type=int, required=True)
    p.add_argument("--genes", type=int, default=None, help="genes g (required unless --encoding direct)")
    p.add_argument("--rules", type=int, default=1, help="interaction rules R (gene families, each its own G)")
    p.add_argument("--encoding", choices=("direct", "neuron", "position"), default="direct")
    p.add_argument("--first-direct", action="store_true", help="keep the first synaptic layer direct")
    p.add_argument("--last-direct", action="store_true", help="keep the read-out direct")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    p.add_argument("--input-shape", default=None, help="H,W,C (default: the architecture's)")
    p.add_argument("--allocation", default=None, metavar="TUPLE",
                   help="per encoded layer the genes of each active rule, e.g. '((14,14),(20,),(14,14),(28,))' "
                        "(--genes and --rules are the maxima; DESIGN 1.3)")
    p.add_argument("--hidden", default=None, metavar="SIZES", help="the MLP's hidden sizes, e.g. 512,256")
    p.add_argument("--json", default=None, metavar="PATH")
    p.set_defaults(func=cmd_params)

    t = sub.add_parser("train", help="train and evaluate one config (resumable)")
    _add_run_arguments(t, "checkpoints and metrics", "no per-epoch lines")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evolve", help="evolve the initial wiring (STE), then train evolved / random / direct")
    _add_run_arguments(e, "checkpoints, evolution.json/png", "no per-generation/epoch lines")
    e.set_defaults(func=cmd_evolve)

    d = sub.add_parser("demo", help="direct vs genetic convnet_s on the embedded CIFAR-10 subset")
    d.add_argument("--out", default="gsnn-demo", help="folder for demo.json and demo.png")
    d.add_argument("--epochs", type=int, default=None, help=f"epochs per variant (default {demo_lib.DEMO_EPOCHS})")
    d.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    d.add_argument("--evolve", action="store_true",
                   help="also evolve the one-rule net's initial wiring (STE) and train it beside its random-wiring twin "
                        "(a few minutes more)")
    d.add_argument("--json", default=None, metavar="PATH", help="also write the result here")
    d.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    d.set_defaults(func=cmd_demo)

    v = sub.add_parser("eval", help="test accuracy of trained runs; --robustness: noise and fewer time steps")
    v.add_argument("--workdir", nargs="+", default=None, help="workdirs of gsnn train runs")
    v.add_argument("--config", nargs="+", default=None, help="configs whose default workdir runs/<name> to use")
    v.add_argument("--labels", nargs="+", default=None, help="a name per run for tables and plots")
    v.add_argument("--robustness", action="store_true",
                   help="input noise, parameter noise and fewer time steps at inference")
    v.add_argument("--plot", default="robustness.png", help="where --robustness draws its figure")
    v.add_argument("--seed", type=int, default=0, help="noise seed")
    v.add_argument("--json", default=None, metavar="PATH")
    v.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", help="training-step speed on the reference workloads W1/W2 or convnet_s")
    b.add_argument("--workload", nargs="+", choices=B.WORKLOADS, default=["w2"])
    b.add_argument("--mode", nargs="+", choices=B.MODES, default=["direct"])
    b.add_argument("--genes", type=int, default=None, help="genes g for --mode genetic")
    b.add_argument("--encoding", choices=("position", "neuron"), default="position")
    b.add_argument("--execution", choices=EXECUTIONS, default="auto",
                   help="how encoded layers execute")
    b.add_argument("--input", choices=B.INPUTS, default="static",
                   help="static: the first synapse runs once (gsnn's default); per_step: T times, as the peers")
    b.add_argument("--conv-impl", choices=CONV_IMPLS, default="auto")
    b.add_argument("--width", type=float, default=1.0, help="channel multiplier (architectures, not w1/w2)")
    b.add_argument("--rules", type=int, default=1, help="interaction rules R for --mode genetic")
    b.add_argument("--last-direct", action="store_true", help="keep the read-out direct (--mode genetic)")
    b.add_argument("--remat", choices=B.REMATS, default="none",
                   help="lif: jax.checkpoint around every LIF time step (memory/speed trade-off)")
    b.add_argument("--steps", type=int, default=10, help="timed steps (after warm-up)")
    b.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
    b.add_argument("--json", default=None, metavar="PATH")
    b.set_defaults(func=cmd_bench)
    return ap


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])  # str(KeyError) wraps the message in quotes
    return str(e)


def main(argv: list[str] | None = None) -> int:
    """Runs ``gsnn`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: usage errors exit 2, --help 0
        return int(e.code or 0)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    joined = False
    try:
        if args.command in ("train", "evolve"):  # a multi-process job, when the environment describes one
            joined = distributed.join()
            distributed.label_output()
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, DataError, CheckpointError) as e:  # DataError is a ValueError
        print(f"error: {_message(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FloatingPointError as e:  # train.NonFiniteError: diverged, not bad input
        print(f"error: {e}", file=sys.stderr)
        return 1
    except RunInterrupted as e:  # SIGINT/SIGTERM: checkpoint written
        print(f"interrupted: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        if joined:
            distributed.leave()


if __name__ == "__main__":
    sys.exit(main())
