"""gsnn against the peer SNN libraries on W1/W2, in one sitting on one machine.

    python benchmarks/compare_peers.py --out benchmarks/results/peers_vs_gsnn

Runs ``shared/bench/peers/run.sh`` (snnTorch, SpikingJelly, spyx, plain JAX; set up once
with ``shared/bench/peers/setup.sh``), then ``gsnn bench`` for every gsnn variant below,
each in its own process, one after another. Writes ``peers.jsonl`` (the peers' own
records), ``gsnn_<variant>.json`` and a summary ``summary.json`` + ``summary.md`` with
samples/s and ratios to snnTorch and to the fastest peer library. Run nothing else on the
machine meanwhile: the peers' README measured about +-20% noise between sittings, so only
ratios within one sitting mean anything.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

from gsnn.runtime.provenance import provenance

PEER_LIBRARIES = ("snntorch", "spikingjelly", "jax-spyx")

# (label, gsnn bench arguments)
VARIANTS = [
    ("direct", ["--mode", "direct"]),
    ("direct_per_step_input", ["--mode", "direct", "--input", "per_step"]),
    ("genetic_g32_materialise", ["--mode", "genetic", "--genes", "32", "--execution", "materialise"]),
    ("genetic_g32_factorised", ["--mode", "genetic", "--genes", "32", "--execution", "factorised"]),
    ("genetic_g32_auto", ["--mode", "genetic", "--genes", "32"]),
]


def _run(cmd, env=None):
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/peers_vs_gsnn")
    ap.add_argument("--peers", default=str(pathlib.Path(__file__).resolve().parents[2] / "shared/bench/peers"),
                    help="folder with run.sh (default ../shared/bench/peers)")
    ap.add_argument("--skip-peers", action="store_true", help="reuse <out>/peers.jsonl")
    ap.add_argument("--workloads", nargs="+", default=["w1", "w2"])
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peers_file = out / "peers.jsonl"
    if not args.skip_peers:
        peers_file.unlink(missing_ok=True)
        env = {**os.environ, "PEER_RESULTS": str(peers_file.resolve()), "WORKLOADS": " ".join(args.workloads)}
        _run(["bash", str(pathlib.Path(args.peers) / "run.sh")], env)
    peers = [json.loads(line) for line in peers_file.read_text().splitlines() if line.strip()]
    ours = {}
    for label, extra in VARIANTS:
        path = out / f"gsnn_{label}.json"
        _run([sys.executable, "-m", "gsnn.cli", "bench", "--workload", *args.workloads, *extra,
              "--steps", str(args.steps), "--json", str(path)])
        data = json.loads(path.read_text())
        for r in data.get("results", [data]):
            ours[(r["workload"], label)] = r
    summary, lines = [], []
    for wl in args.workloads:
        by_impl = {p["impl"]: p for p in peers if p.get("workload") == wl}
        libs = {k: v["sps_median"] for k, v in by_impl.items() if k in PEER_LIBRARIES}
        ref = by_impl.get("snntorch", {}).get("sps_median")
        best_name = max(libs, key=libs.get) if libs else None
        lines += [f"\n### {wl.upper()}\n", "| implementation | samples/s (median) | ms/step | GFLOP/s | vs snnTorch | vs fastest peer library |",
                  "|---|---|---|---|---|---|"]
        rows = [(k, v["sps_median"], v["ms_median"], v.get("achieved_gflops")) for k, v in by_impl.items()]
        rows += [(f"gsnn {label}", r["samples_per_s"], r["ms_median"], r.get("achieved_gflops"))
                 for (w, label), r in ours.items() if w == wl]
        for name, sps, ms, gf in rows:
            vs_ref = sps / ref if ref else None
            vs_best = sps / libs[best_name] if best_name else None
            summary.append(dict(workload=wl, impl=name, samples_per_s=sps, ms_median=ms, achieved_gflops=gf,
                                vs_snntorch=vs_ref, vs_fastest_peer=vs_best, fastest_peer=best_name))
            fmt = lambda v: f"{v:.2f}x" if v else "-"
            lines.append(f"| {name} | {sps:.1f} | {ms:.1f} | {gf:.1f} | {fmt(vs_ref)} | {fmt(vs_best)} |" if gf else
                         f"| {name} | {sps:.1f} | {ms:.1f} | - | {fmt(vs_ref)} | {fmt(vs_best)} |")
    matmul = [p for p in peers if str(p.get("impl", "")).startswith("matmul")]
    if matmul:
        peak = matmul[0]["gflops_median"]
        lines.append(f"\nfloat32 matmul peak (2048^2, JAX): {peak:.0f} GFLOP/s")
        for row in summary:
            row["fraction_of_matmul_peak"] = row["achieved_gflops"] / peak if row["achieved_gflops"] else None
        lines.append("Achieved GFLOP/s over that peak: " + "; ".join(
            f"{r['workload']} {r['impl']} {r['fraction_of_matmul_peak']:.2f}" for r in summary
            if r.get("fraction_of_matmul_peak")))
    (out / "summary.json").write_text(json.dumps(dict(command="python benchmarks/compare_peers.py "
                                                      + " ".join(argv if argv is not None else sys.argv[1:]),
                                                      matmul=matmul, results=summary, provenance=provenance()), indent=1))
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
