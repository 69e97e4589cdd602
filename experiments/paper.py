"""The paper-scale runner: one command per row of the source's tables.

    python experiments/paper.py resnet19_cifar10:direct
    python experiments/paper.py resnet19_cifar10:genetic
    python experiments/paper.py resnet19_cifar10:ste          # STE, then evolved / random / direct
    python experiments/paper.py resnet34_imagenet:genetic --set data.data_dir=/data/tfds

Benchmarks: resnet19_cifar10, resnet19_cifar100, vgg16_cifar10, resnet34_imagenet (each
``:direct``, ``:genetic`` or ``:ste``; configs in experiments/configs/). ``:ste`` runs
``gsnn evolve`` (population sharded over every visible device), the others ``gsnn train``.
Work goes to ``--workdir`` (default runs/<config name>); a killed run resumes when started
again with the same arguments. Results: ``<workdir>/metrics.json`` or ``evolution.json``,
plus ``--json`` if given.
"""
import argparse
import json
import pathlib
import sys

from gsnn import config as cfgs
from gsnn.analysis import energy as E
from gsnn.nn import networks as M

BENCHMARKS = ("resnet19_cifar10", "resnet19_cifar100", "vgg16_cifar10", "resnet34_imagenet")


def describe_compute(cfg: cfgs.Config) -> str:
    """Parameters and forward MACs per image of the config's network (no computation)."""
    model = M.build_model(cfg.model)
    shape = M.default_input_shape(cfg.model.arch)
    specs = M.describe(model, shape, batch=1)
    report = E.parameter_report(*specs)
    macs = sum(s.c_in * s.c_out * s.kernel_positions * s.out_positions * (cfg.model.T if s.runs_per_step else 1)
               for s in specs[0])
    return (f"{cfg.name}: {cfg.model.arch}, input {shape}, T={cfg.model.T}: {report.stored_params:,} parameters "
            f"(direct {report.direct_params:,}, {report.compression:.1%} fewer); dense forward "
            f"{macs / 1e9:.2f} GMAC per image over T steps, about {3 * macs * cfg.train.batch_size / 1e12:.2f} "
            f"TMAC per training step of batch {cfg.train.batch_size}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", help="<benchmark>:<direct|genetic|ste>, e.g. resnet19_cifar10:genetic")
    ap.add_argument("--set", dest="overrides", nargs="*", default=[], help="config overrides (key=value)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--dry-run", action="store_true", help="print the config and its compute, run nothing")
    args = ap.parse_args(argv)
    bench, _, variant = args.experiment.partition(":")
    if bench not in BENCHMARKS:
        raise SystemExit(f"error: unknown benchmark {bench!r}; valid: {list(BENCHMARKS)}")
    cfg = cfgs.load_config(args.experiment, args.overrides)
    print(describe_compute(cfg), flush=True)
    if args.dry_run:
        print(cfg.to_json())
        return 0
    workdir = pathlib.Path(args.workdir or pathlib.Path("runs") / cfg.name)
    if variant == "ste":
        from gsnn import evolution as EV

        result = EV.run_evolution(cfg, workdir)
    else:
        from gsnn import training

        result = {k: v for k, v in training.train_and_evaluate(cfg, workdir).items() if k != "state"}
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
