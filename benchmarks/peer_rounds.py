"""Like for like against the peer libraries in alternating rounds: the ratio per round.

    python benchmarks/peer_rounds.py --rounds 3 --out benchmarks/results/peer_rounds

One sitting of ``compare_peers.py`` runs every peer first and gsnn after, minutes apart,
and this machine's speed drifts by 20-50% over minutes (benchmarks/README.md §1). Here
each round runs the peers (``shared/bench/peers/run.sh``) and then gsnn with the input
fed per step (``gsnn bench --input per_step``) right after them, and the ratio
gsnn / fastest peer library is taken within the round. Reported per workload: each
round's ratio and the fastest library of that round, their median, minimum and maximum.
Writes ``<out>/round_<r>/`` (the round's raw records), ``summary.json`` (with
provenance) and ``summary.md``. Run nothing else meanwhile.
"""
import argparse
import json
import os
import pathlib
import statistics
import sys

from compare_peers import PEER_LIBRARIES, _run

from gsnn.runtime.provenance import provenance


def run_round(out: pathlib.Path, peers: pathlib.Path, workloads: list[str], steps: int) -> dict:
    """One round: the peers, then gsnn per step. Returns ``{workload: {impl: samples/s}}``."""
    out.mkdir(parents=True, exist_ok=True)
    peers_file = out / "peers.jsonl"
    peers_file.unlink(missing_ok=True)
    env = {**os.environ, "PEER_RESULTS": str(peers_file.resolve()), "WORKLOADS": " ".join(workloads)}
    _run(["bash", str(peers / "run.sh")], env)
    ours = out / "gsnn_per_step.json"
    _run([sys.executable, "-m", "gsnn.cli", "bench", "--workload", *workloads, "--mode", "direct",
          "--input", "per_step", "--steps", str(steps), "--json", str(ours)])
    rates = {wl: {} for wl in workloads}
    for line in peers_file.read_text().splitlines():
        p = json.loads(line) if line.strip() else {}
        if p.get("workload") in rates:
            rates[p["workload"]][p["impl"]] = p["sps_median"]
    data = json.loads(ours.read_text())
    for r in data.get("results", [data]):
        rates[r["workload"]]["gsnn"] = r["samples_per_s"]
    return rates


def summarise(rounds: list[dict], workloads: list[str]) -> dict:
    """Per workload: each round's fastest peer library and gsnn's ratio to it, and the
    ratios' median, minimum and maximum."""
    out = {}
    for wl in workloads:
        per_round = []
        for rates in rounds:
            libs = {k: v for k, v in rates[wl].items() if k in PEER_LIBRARIES}
            best = max(libs, key=libs.get)
            per_round.append(dict(fastest_peer=best, fastest_peer_sps=libs[best], gsnn_sps=rates[wl]["gsnn"],
                                  ratio=rates[wl]["gsnn"] / libs[best], all=rates[wl]))
        ratios = [r["ratio"] for r in per_round]
        out[wl] = dict(rounds=per_round, ratio_median=statistics.median(ratios), ratio_min=min(ratios),
                       ratio_max=max(ratios))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/peer_rounds")
    ap.add_argument("--peers", default=str(pathlib.Path(__file__).resolve().parents[2] / "shared/bench/peers"),
                    help="folder with run.sh (default ../shared/bench/peers)")
    ap.add_argument("--workloads", nargs="+", default=["w1", "w2"])
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {args.rounds}")
    out = pathlib.Path(args.out)
    rounds = [run_round(out / f"round_{r}", pathlib.Path(args.peers), args.workloads, args.steps)
              for r in range(args.rounds)]
    summary = summarise(rounds, args.workloads)
    lines = ["| workload | " + " | ".join(f"round {r}" for r in range(args.rounds)) + " | median (min-max) |",
             "|---|" + "---|" * (args.rounds + 1)]
    for wl, s in summary.items():
        cells = [f"{r['ratio']:.2f}x ({r['fastest_peer']} {r['fastest_peer_sps']:.0f}, gsnn {r['gsnn_sps']:.0f})"
                 for r in s["rounds"]]
        lines.append(f"| {wl.upper()} | " + " | ".join(cells)
                     + f" | {s['ratio_median']:.2f}x ({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) |")
    (out / "summary.json").write_text(json.dumps(dict(
        command="python benchmarks/peer_rounds.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        workloads=summary, provenance=provenance()), indent=1))
    (out / "summary.md").write_text("gsnn (input fed per step) / fastest peer library, samples/s, per round\n\n"
                                    + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
