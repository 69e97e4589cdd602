"""Training-step throughput of a gsnn model (samples/s), warm-up excluded.

    python benchmarks/train_step.py --arch convnet_s --encodings direct position:16 neuron:32 \\
        --batch 128 --T 4 --steps 10 --json benchmarks/results/train_step_convnet_s.json
    python benchmarks/train_step.py --encodings direct position:28 position:14x2 neuron:32x2 \\
        --json benchmarks/results/train_step_convnet_s_rules.json    # interaction rules (R = 2)

Prints a table (median/min/max ms per step, samples/s, XLA step memory, peak RSS) and
writes JSON. The step is gsnn's real one (``gsnn.training.make_steps``: normalisation,
crop+flip, forward, cross-entropy, backward, SGD update) on random uint8 images, timed by
:func:`gsnn.bench.run_workload`. ``--remat none lif`` measures the memory/speed trade-off of the
rematerialisation policies.
"""
import argparse
import sys


from gsnn import bench as B


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="convnet_s")
    ap.add_argument("--encodings", nargs="+", default=["direct", "position:16", "neuron:32"],
                    help="direct, or encoding:genes[xrules] (position:16, neuron:32x2)")
    ap.add_argument("--execution", default="auto")
    ap.add_argument("--conv-impl", default="auto")
    ap.add_argument("--remat", nargs="+", choices=B.REMATS, default=["none"],
                    help="rematerialisation policies to measure, one row each")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print(B.HEADER)
    for item in args.encodings:
        enc, _, spec = item.partition(":")
        g, _, rules = spec.partition("x")
        for remat in args.remat:
            r = B.run_workload(args.arch, "direct" if enc == "direct" else "genetic", int(g) if g else None,
                               encoding=enc if enc != "direct" else "position", execution=args.execution,
                               n_timed=args.steps, remat=remat, conv_impl=args.conv_impl,
                               batch=args.batch, T=args.T, width=args.width, rules=int(rules or 1))
            rows.append(dict(r.asdict(), arch=args.arch, encoding=enc, rules=int(rules or 1)))
            print(B.format_row(r), flush=True)
    B.write_result(args.json, dict(B.environment(), results=rows, command="python benchmarks/train_step.py "
                                   + " ".join(argv if argv is not None else sys.argv[1:])))


if __name__ == "__main__":
    main()
