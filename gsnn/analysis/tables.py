"""Aligned plain-text tables of gsnn's results (the tables the ``gsnn`` command and the
demo print), from their result dicts; pure formatting, no computation."""
from __future__ import annotations

import math


def format_table(rows: list[list[str]], header: list[str], align: str | None = None) -> str:
    """An aligned plain-text table; ``align`` has one ``l``/``r`` per column."""
    align = align or "l" + "r" * (len(header) - 1)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if a == "l" else str(c).rjust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def format_count(n: float) -> str:
    """``12345678`` -> ``12.3M``; ``2394`` -> ``2,394``."""
    n = float(n)
    for unit, div in (("G", 1e9), ("M", 1e6)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:,.0f}"


def layer_shape(row: dict) -> str:
    """``3x3x64->128`` (conv) or ``784->1024`` (dense) of a per-layer parameter row."""
    if row["kind"] == "dense":
        return f"{row['c_in']}->{row['c_out']}"
    k = row["kernel_positions"]
    side = math.isqrt(k)
    kernel = f"{side}x{side}" if side * side == k else f"{k}pos"
    return f"{kernel}x{row['c_in']}->{row['c_out']}"


def params_table(rep: dict) -> str:
    """The per-layer table of ``gsnn params`` (a :func:`gsnn.cli.params_report` dict)."""
    header = ["layer", "kind", "encoding", "shape", "direct params", "stored params", "max rank", "execution"]
    rows = [[r["name"], r["kind"], r["encoding"], layer_shape(r), f"{r['direct_params']:,}",
             f"{r['stored_params']:,}", f"{r['max_rank']:,}", r["execution"]] for r in rep["per_layer"]]
    g, R = rep["genes"], rep["rules"]
    per_rule = f"{R} x " if R > 1 else ""
    if rep["interaction_params"]:
        rows.append([f"G (shared, {per_rule}{g}x{g})", "-", "genetic", f"{per_rule}{g}x{g}", "0",
                     f"{rep['interaction_params']:,}", "-", "-"])
    if rep["population_params"]:
        rows.append(["population encodings", "-", "neuron", f"{per_rule}rows x {g}", "0",
                     f"{rep['population_params']:,}", "-", "-"])
    rows.append(["norm / PLIF", "-", "-", "-", f"{rep['unencoded_params']:,}", f"{rep['unencoded_params']:,}", "-", "-"])
    rows.append(["total", "", "", "", f"{rep['direct_params']:,}", f"{rep['stored_params']:,}", "", ""])
    shape = "x".join(map(str, rep["input_shape"]))
    width = "" if rep["width"] == 1 else f", width {rep['width']:g}"
    genes = "" if rep["encoding"] == "direct" else f", g={g}" + (f", {R} interaction rules" if R > 1 else "")
    if rep.get("allocation"):
        genes = f", allocation (genes per rule) {rep['allocation']}"
    head = f"{rep['arch']} ({rep['num_classes']} classes, input {shape}{width}), encoding {rep['encoding']}{genes}"
    table = format_table(rows, header, align="llllrrrl")
    foot = (f"direct {rep['direct_params']:,} | stored {rep['stored_params']:,} | "
            f"compression {100 * rep['compression']:.1f}%")
    return f"{head}\n\n{table}\n\n{foot}"


def train_table(r: dict) -> str:
    """The one-row table of a ``gsnn train`` result."""
    e, p = r["energy"], r["params"]
    header = ["test acc", "top-5", "params", "direct params", "compression", "firing rate",
              "energy uJ/inf", "ACs", "MACs"]
    row = [f"{100 * r['test_accuracy']:.2f}%", f"{100 * r['test_top5']:.2f}%", f"{p['stored_params']:,}",
           f"{p['direct_params']:,}", f"{100 * p['compression']:.1f}%", f"{e['mean_firing_rate']:.3f}",
           f"{e['energy_uj']:.3f}", format_count(e["acs"]), format_count(e["macs"])]
    return f"{r['name']}: {r['epochs_completed']} epochs\n\n" + format_table([row], header, align="r" * 9)


def evolution_table(result: dict) -> str:
    """The comparison table of ``gsnn evolve``'s final variants."""
    header = ["variant", "test acc", "params", "compression", "firing rate", "energy uJ/inf", "epochs"]
    rows = [[name, f"{100 * v['test_accuracy']:.2f}%", f"{v['params']:,}", f"{100 * v['compression']:.1f}%",
             f"{v['mean_firing_rate']:.3f}", f"{v['energy_uj']:.3f}", str(v["epochs"])]
            for name, v in result["final"].items()]
    g = result["generations"]
    head = (f"{result['name']}: {len(g)} generations, genome {result['genome_size']:,} values, "
            f"best fitness {result['best_fitness']:.4f} (generation {result['best_generation']})")
    if result.get("generations_to_target"):
        head += f", target val accuracy reached at generation {result['generations_to_target']}"
    return head + ("\n\n" + format_table(rows, header) if rows else "")
