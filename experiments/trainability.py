"""Trainability study of the genetic encoding (DESIGN 1.5): which parameterisation,
initialisation and optimiser let an encoded convnet_s train like the direct one.

Runs each variant (a list of ``--set`` overrides on ``convnet_s_cifar10_direct``) on the
same CIFAR-10 subset with the same budget and appends one JSON line per finished run to
``--out``; finished variants are skipped when the script is started again.

    python experiments/trainability.py --out experiments/results/trainability.jsonl \
        --set train.epochs=4 data.train_per_class=500 data.test_per_class=200
"""
import argparse
import json
import pathlib
import sys
import time

from gsnn import config as cfgs
from gsnn import training

VARIANTS = {
    "direct_sgd": [],
    "position16_unit_sgd": ["model.genetic.encoding=position", "model.genetic.genes=16",
                            "model.genetic.init_scheme=unit", "model.genetic.interaction_init=normal"],
    "position16_balanced_sgd": ["model.genetic.encoding=position", "model.genetic.genes=16"],
    "position28_lastdirect_balanced_sgd": ["model.genetic.encoding=position", "model.genetic.genes=28",
                                           "model.genetic.last_direct=true"],
    "position16_unit_adamw": ["model.genetic.encoding=position", "model.genetic.genes=16",
                              "model.genetic.init_scheme=unit", "model.genetic.interaction_init=normal",
                              "train.optimizer=adamw", "train.learning_rate=0.002", "train.weight_decay=0.0005"],
    "position16_balanced_adamw": ["model.genetic.encoding=position", "model.genetic.genes=16",
                                  "train.optimizer=adamw", "train.learning_rate=0.002", "train.weight_decay=0.0005"],
    "direct_adamw": ["train.optimizer=adamw", "train.learning_rate=0.002", "train.weight_decay=0.0005"],
    "neuron32_balanced_sgd": ["model.genetic.encoding=neuron", "model.genetic.genes=32"],
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/results/trainability.jsonl")
    ap.add_argument("--base", default="convnet_s_cifar10_direct")
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run")
    ap.add_argument("--set", nargs="*", default=[], dest="overrides", help="overrides for every variant")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        done = {(r["variant"], r["seed"], tuple(r["common"])) for r in map(json.loads, out.read_text().splitlines()) if r}
    for name, sets in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        if (name, args.seed, tuple(args.overrides)) in done:
            print(f"skip {name} (done)")
            continue
        cfg = cfgs.load_config(args.base, sets + args.overrides + [f"seed={args.seed}", f"name={name}"])
        t0 = time.time()
        r = training.train_and_evaluate(cfg, None)
        rec = dict(variant=name, seed=args.seed, overrides=sets, common=args.overrides,
                   test_accuracy=r["test_accuracy"], final_train_loss=r["history"][-1]["train_loss"],
                   final_train_accuracy=r["history"][-1]["train_accuracy"],
                   params=r["params"]["stored_params"], compression=r["params"]["compression"],
                   history=[{k: h[k] for k in ("epoch", "train_loss", "train_accuracy", "test_accuracy", "epoch_seconds")}
                            for h in r["history"]],
                   wall_s=time.time() - t0)
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"== {name}: test {rec['test_accuracy']:.4f} train loss {rec['final_train_loss']:.3f} "
              f"params {rec['params']} ({rec['compression']:.1%}) {rec['wall_s']:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
