"""gsnn.demo and gsnn.demo_configs without training: the rows, the shipped configs, the
deployed-energy convention and the table's sentences (``gsnn demo --quick`` itself runs
in tests/test_cli.py)."""
import dataclasses

import pytest

from gsnn import config as cfgs
from gsnn import demo
from gsnn import demo_configs as DC
from gsnn.analysis.energy import PJ_PER_AC, PJ_PER_MAC, parameter_report, synaptic_operations
from gsnn.nn.networks import build_model, describe


def test_default_rows_and_the_evolve_flag():
    names = [v.name for v in demo.demo_variants()]
    assert names == list(DC.DEFAULT_VARIANTS)
    assert "evolved" not in names
    evolved = [v.name for v in demo.demo_variants(evolve=True)]
    assert evolved[:len(names)] == names and evolved[-1] == "evolved" and evolved.count("position") == 1
    with pytest.raises(ValueError, match="named twice"):
        demo.demo_variants(variants=("direct", "direct"))
    with pytest.raises(KeyError, match="unknown demo variant 'nope'; valid: .*'position_r2'"):
        demo.demo_variants(variants=("nope",))


@pytest.mark.parametrize("variant", DC.VARIANTS, ids=lambda v: v.name)
def test_every_variant_is_a_shipped_config(variant):
    cfg = cfgs.load_config(f"demo_{variant.name}")
    assert cfg == DC.demo_config(variant.name)
    g = cfg.model.genetic
    assert (g.encoding, g.genes, g.rules, g.last_direct, cfg.model.width) == (
        variant.encoding, variant.genes, variant.rules, variant.last_direct, variant.width)
    assert cfgs.load_config(f"demo_{variant.name}:quick").model.width == variant.width / 4


def _params(name: str) -> int:
    return parameter_report(*describe(build_model(DC.demo_config(name).model))).stored_params


def test_the_narrowed_direct_row_has_the_two_rule_rows_size():
    """The equal-size comparison: parameter counts within 5% (the study's match)."""
    two_rule = [v for v in DC.VARIANTS if v.rules > 1]
    narrowed = [v for v in DC.VARIANTS if v.encoding == "direct" and v.width < DC.DEMO_WIDTH]
    assert two_rule and narrowed
    for enc in two_rule:
        assert any(abs(_params(n.name) - _params(enc.name)) <= 0.05 * _params(enc.name) for n in narrowed), enc.name
    assert _params("direct") > 1.8 * _params(two_rule[0].name)  # about half of direct's parameters


def _ops(model_cfg, densities):
    synapses = describe(build_model(model_cfg), batch=1)[0]
    return synaptic_operations(synapses, densities, model_cfg.T, batch=1)


@pytest.mark.parametrize("name", ["direct", "position_r2", "position"])
def test_deployed_energy_is_the_direct_net_of_the_same_shapes(name):
    """W generated once at load: every layer then costs what a direct layer of its shapes
    costs at the measured input densities, whether it trains materialised (two rules) or
    factorised (one rule)."""
    cfg = DC.demo_config(name)
    names = [s.name for s in describe(build_model(cfg.model), batch=1)[0]]
    densities = {n: 0.05 + 0.1 * i for i, n in enumerate(names)}
    energy = dict(synaptic_ops=_ops(cfg.model, densities))
    got = demo.deployed_operations(cfg, energy)
    same_shapes = dataclasses.replace(cfg.model, genetic=cfgs.GeneticConfig())  # direct weights, same widths
    want = _ops(same_shapes, densities)
    acs, macs = sum(r["acs"] for r in want), sum(r["macs"] for r in want)
    assert got["acs"] == pytest.approx(acs) and got["macs"] == pytest.approx(macs)
    assert got["energy_uj"] == pytest.approx((acs * PJ_PER_AC + macs * PJ_PER_MAC) * 1e-6)
    per_inference = energy["synaptic_ops"]
    synthesis = sum(r["synthesis_macs"] for r in per_inference)
    if name == "position_r2":  # materialised: the per-inference figure adds W's synthesis
        assert synthesis > 0
        assert sum(r["macs"] for r in per_inference) == pytest.approx(macs)
    if name == "position":  # factorised: no synthesis, but real-valued MACs a deployed net avoids
        assert synthesis == 0 and sum(r["macs"] for r in per_inference) > macs


def _row(variant, acc, params, encoding="position", rules=1):
    return dict(variant=variant, label=variant, test_accuracy=acc, params=params, compression=0.0,
                encoding=encoding, rules=rules)


def test_the_table_compares_the_two_rule_row_at_equal_size():
    rows = [_row("direct", 0.415, 33946, "direct"), _row("position_r2", 0.40, 17398, rules=2),
            _row("direct_w033", 0.385, 17192, "direct"), _row("position", 0.36, 16384)]
    text = demo._equal_size(rows)
    assert text == ("\nposition_r2: -1.5 points against direct at 0% fewer parameters, +1.5 against the direct "
                    "net of its size (direct_w033, 17,192 vs 17,398 parameters)")
    assert demo._equal_size(rows[:2]) == ""  # no direct net of its size in the run
    far = [rows[0], rows[1], _row("direct_w020", 0.3, 8000, "direct")]
    assert demo._equal_size(far) == ""  # more than 5% apart: not the same size
    assert demo._fewer_than_direct(rows) == pytest.approx([0, 1 - 17398 / 33946, 1 - 17192 / 33946, 1 - 16384 / 33946])


def test_the_demo_rows_are_the_ones_the_validation_selection_picked():
    """experiments/results/demo/selection.json (written by experiments/demo_selection.py,
    on validation only) names the two-rule row and the width the demo trains."""
    import json
    import pathlib
    import sys

    repo = pathlib.Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "experiments"))
    import demo_selection

    sel = json.loads((repo / "experiments/results/demo/selection.json").read_text())
    assert sel["quick"] is False
    assert all("test_accuracy" not in r for r in sel["candidates"].values())  # chosen without the test images
    assert all("data.val_per_class=100" in r["command"] for r in sel["candidates"].values())
    pick = sel["pick"]
    finite = {n: r["val_accuracy"] for n, r in sel["candidates"].items()
              if r["val_accuracy"] is not None and "model.genetic.rules=2" in r["command"]}
    assert pick["two_rule"] == max(finite, key=finite.get)
    cfg = cfgs.load_config("demo_direct", pick["two_rule_overrides"])
    two_rule = [v for v in DC.VARIANTS if v.name in DC.DEFAULT_VARIANTS and v.rules > 1]
    g = cfg.model.genetic
    assert (g.encoding, g.genes, g.rules, g.last_direct) in {(v.encoding, v.genes, v.rules, v.last_direct)
                                                              for v in two_rule}
    assert DC.get_variant(pick["narrowed_direct"]).width == pick["width"]
    assert pick["narrowed_direct"] in DC.DEFAULT_VARIANTS
    assert demo_selection.matched_width(sel["candidates"][pick["two_rule"]]["params"]) == (pick["width"],
                                                                                          pick["width_params"])
