"""Tests of gsnn.analysis.energy: synaptic operations and energy on hand-built layer specs,
flattening of sown statistics, and consistency with a real model's names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn.analysis import energy
from gsnn.nn import layers as L
from gsnn.nn import networks as M
from gsnn.core import genetic


def _spec(name, *, kind="conv", encoding="direct", c_in, c_out, P=9, in_pos=1, out_pos=1, genes=0,
          execution="materialise", pre_rows=0, spatial_rows=0, bias=False, real_input=False, runs=1):
    return L.LayerSpec(
        name=name, kind=kind, encoding=encoding, c_in=c_in, c_out=c_out, kernel_positions=P,
        in_positions=in_pos, out_positions=out_pos, genes=genes, execution=execution,
        pre_population=name + "_pre", post_population=name + "_post", pre_rows=pre_rows,
        spatial_rows=spatial_rows, bias=bias, real_input=real_input, runs_per_step=runs,
    )


T, BATCH = 4, 4

SPECS = [
    # First layer: direct conv 3x3, 3 -> 8, 8x8 map, real image input, static (runs once).
    _spec("first", c_in=3, c_out=8, in_pos=64, out_pos=64, real_input=True, runs=0),
    # Direct conv 3x3, 8 -> 16 on a 4x4 map, spiking input of density 0.2, every step.
    _spec("direct_spiking", c_in=8, c_out=16, in_pos=16, out_pos=16),
    # Factorised neuron-mode conv 3x3 stride 2, 16 -> 32, 4x4 -> 2x2, g = 8, density 0.5.
    _spec("fact_neuron", encoding="neuron", c_in=16, c_out=32, in_pos=16, out_pos=4, genes=8,
          execution="factorised", pre_rows=16, spatial_rows=9),
    # Factorised position-mode conv 3x3, 16 -> 8 on 2x2, g = 8, density 1.0.
    _spec("fact_position", encoding="position", c_in=16, c_out=8, in_pos=4, out_pos=4, genes=8,
          execution="factorised", pre_rows=144),
    # Materialised position-mode read-out (dense 32 -> 10, bias), static time-averaged input.
    _spec("readout", kind="dense", encoding="position", c_in=32, c_out=10, P=1, genes=8,
          pre_rows=32, bias=True, runs=0),
]
DENSITIES = {"direct_spiking": 0.2, "fact_neuron": 0.5, "fact_position": 1.0, "readout": 0.3, "first": 0.9}

# Hand computation, one example over T = 4 steps:
EXPECTED = {
    # real image, once: 64 positions * 9 * 3 * 8 MACs
    "first": dict(acs=0.0, macs=13824.0, synthesis_macs=0.0),
    # 0.2 * (16 * 9 * 8 * 16 = 18432) * 4 steps
    "direct_spiking": dict(acs=0.2 * 18432 * 4, macs=0.0, synthesis_macs=0.0),
    # first stage pointwise 16 positions * 16 * 8 = 2048 on spikes: 0.5 * 2048 * 4 ACs;
    # later 4 positions * (9 * 8 depthwise + 8 * 32 pointwise) = 1312 MACs * 4 steps
    "fact_neuron": dict(acs=0.5 * 2048 * 4, macs=1312.0 * 4, synthesis_macs=0.0),
    # first stage 4 * 9 * 16 * 8 = 4608 ACs (density 1), later 4 * 8 * 8 = 256 MACs, x4
    "fact_position": dict(acs=4608.0 * 4, macs=256.0 * 4, synthesis_macs=0.0),
    # once, real-valued (time-averaged): 32 * 10 MACs; generation 8*8*10 + 32*8*10 = 3200
    # amortised over a batch of 4
    "readout": dict(acs=0.0, macs=320.0, synthesis_macs=800.0),
}


def test_synaptic_operations_hand_computed():
    rows = energy.synaptic_operations(SPECS, DENSITIES, T=T, batch=BATCH)
    assert [r["name"] for r in rows] == [s.name for s in SPECS]
    for r in rows:
        want = EXPECTED[r["name"]]
        for k, v in want.items():
            assert r[k] == pytest.approx(v), (r["name"], k, r[k], v)
    by = {r["name"]: r for r in rows}
    assert by["first"]["input_density"] == 1.0  # real input: density not used
    # a spiking-input layer without a measured density is an error, not counted as dense
    with pytest.raises(ValueError, match=r"no measured input density for the synapse\(s\) \['fact_position'\]"):
        energy.synaptic_operations(SPECS, {k: v for k, v in DENSITIES.items() if k != "fact_position"}, T=T)
    assert energy.synaptic_operations(SPECS, {k: v for k, v in DENSITIES.items() if k != "first"}, T=T) == \
        energy.synaptic_operations(SPECS, dict(DENSITIES, first=0.1), T=T)  # the real input's is never read


def test_energy_report_hand_computed():
    acs = sum(v["acs"] for v in EXPECTED.values())  # 14745.6 + 4096 + 18432 = 37273.6
    macs = sum(v["macs"] + v["synthesis_macs"] for v in EXPECTED.values())  # 13824+5248+1024+1120
    assert acs == pytest.approx(37273.6) and macs == pytest.approx(21216.0)
    stats = {name: {"input_density": d} for name, d in DENSITIES.items()}
    stats["lif1"] = {"firing_rate": 0.1}
    stats["block"] = {"lif2": {"firing_rate": 0.3}}
    params = energy.parameter_report(SPECS, [], [])
    rep = energy.energy_report(params, SPECS, stats, T=T, batch=BATCH)
    assert rep["acs"] == pytest.approx(acs)
    assert rep["macs"] == pytest.approx(macs)
    assert rep["energy_uj"] == pytest.approx((0.9 * acs + 4.6 * macs) * 1e-6)
    assert rep["energy_uj"] == pytest.approx(0.13113984, rel=1e-6)
    assert rep["firing_rates"] == {"lif1": 0.1, "block/lif2": 0.3}
    assert rep["mean_firing_rate"] == pytest.approx(0.2)
    assert rep["weight_bytes"] == 4 * params.stored_params
    assert rep["direct_weight_bytes"] == 4 * params.direct_params
    # W generated once at load: the 800 synthesis MACs of the read-out are not charged
    assert rep["synthesis_macs"] == pytest.approx(800.0)
    assert rep["energy_uj_generated_once"] == pytest.approx((0.9 * acs + 4.6 * (macs - 800.0)) * 1e-6)
    # weights read per inference, generated once: whole W of the materialised layers
    # (first 216, direct_spiking 1152, readout 330), the factors of the factorised ones
    # (fact_neuron: spatial 9*8; fact_position: (144 + 8) * 8), and, as a layer runs
    # factorised, G (64) and the populations ((16 + 32) * 8)
    assert params.stored_params == 216 + 1152 + 72 + 1216 + (32 + 10) * 8 + 10 + 64 + 48 * 8
    assert rep["weight_read_bytes_generated_once"] == 4 * (216 + 1152 + 72 + 1216 + 330 + 64 + 48 * 8)
    assert rep["weight_read_bytes_per_inference"] == 4 * params.stored_params


def test_synthesis_macs_count_every_rule_and_their_products():
    assert genetic.synthesis_macs(9, 16, 32, 4) == 4 * 4 * 32 + 9 * 16 * 4 * 32
    assert genetic.synthesis_macs(9, 16, 32, 4, rules=2) == 2 * (4 * 4 * 32 + 9 * 16 * 4 * 32) + 9 * 16 * 32


def test_parameter_report_hand_computed():
    neurons = [L.NeuronSpec("a", 100, True), L.NeuronSpec("b", 50, False)]
    norms = [L.NormSpec("bn1", 8), L.NormSpec("bn2", 16)]
    rep = energy.parameter_report(SPECS, neurons, norms)
    unencoded = 2 * (8 + 16) + 1  # BN affine + one PLIF tau
    direct = (27 * 8) + (72 * 16) + (144 * 32) + (144 * 8) + (32 * 10 + 10) + unencoded
    # G 8x8; populations fact_neuron_pre (16) and _post (32); spatial 9 x 8;
    # position layers (144 + 8) x 8 and (32 + 10) x 8 + bias 10; direct layers' weights.
    genetic = 64 + (16 + 32) * 8 + 9 * 8 + (144 + 8) * 8 + (32 + 10) * 8 + 10 + 27 * 8 + 72 * 16 + unencoded
    assert rep.direct_params == direct
    assert rep.stored_params == genetic
    assert rep.interaction_params == 64 and rep.population_params == 48 * 8
    assert rep.compression == pytest.approx(1 - genetic / direct)
    assert rep.as_dict()["compression"] == pytest.approx(rep.compression)


def test_flatten_nested_stats():
    stats = {
        "conv1": {"firing_rate": 0.25},
        "conv2_conv": {"input_density": 0.5},
        "layer1": {
            "firing_rate": 0.125,
            "inner": {"firing_rate": 0.75, "deeper": {"input_density": 0.0625}},
        },
        "readout": {"input_density": 1.0},
    }
    assert energy.firing_rates(stats) == {"conv1": 0.25, "layer1": 0.125, "layer1/inner": 0.75}
    assert energy.input_densities(stats) == {
        "conv2_conv": 0.5, "layer1/inner/deeper": 0.0625, "readout": 1.0,
    }
    # jax scalars are converted to Python floats
    out = energy.firing_rates({"a": {"firing_rate": jnp.float32(0.5)}})
    assert out == {"a": 0.5} and isinstance(out["a"], float)


def test_names_of_a_real_model_line_up():
    """The sown stats of a model are keyed by the same names as its layer specs, so
    synaptic_operations finds every measured density."""
    cfg = M.ModelConfig(arch="convnet_s", T=2, width=0.125,
                        genetic=L.GeneticConfig(encoding="neuron", genes=4))
    model = M.build_model(cfg)
    shape = (8, 8, 3)
    syn, neu, nrm = M.describe(model, shape)
    v = jax.jit(lambda k: M.init_variables(model, k, shape))(jax.random.key(0, impl="rbg"))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2,) + shape), jnp.float32)
    _, state = jax.jit(lambda vv, xx: model.apply(vv, xx, train=True, mutable=["stats", "batch_stats"]))(v, x)
    rates = energy.firing_rates(state["stats"])
    dens = energy.input_densities(state["stats"])
    assert set(rates) == {n.name for n in neu} == {"conv1", "conv2", "conv3"}
    assert set(dens) == {s.name for s in syn if not s.real_input} == {"conv2_conv", "conv3_conv", "readout"}
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    rows = energy.synaptic_operations(syn, dens, T=2, batch=2)
    assert [r["input_density"] for r in rows[1:]] == [pytest.approx(dens[s.name]) for s in syn[1:]]
    rep = energy.energy_report(energy.parameter_report(syn, neu, nrm), syn, state["stats"], T=2, batch=2)
    assert rep["energy_uj"] > 0


def test_poisson_first_layer_counts_accumulates():
    """With Poisson coding the first layer reads spikes every step: ACs scaled by the
    measured density, not MACs on a static image."""
    shape = (8, 8, 3)
    for coding, want_real in (("direct", True), ("poisson", False)):
        cfg = M.ModelConfig(arch="mlp", T=4, hidden=(16,), input_coding=coding)
        syn, _, _ = M.describe(M.build_model(cfg), shape)
        assert syn[0].real_input == want_real
        row = energy.synaptic_operations(syn, {s.name: 0.25 for s in syn}, T=4)[0]
        if want_real:  # once, 192 * 16 MACs
            assert row["macs"] == 192 * 16 and row["acs"] == 0
        else:  # 0.25 * 192 * 16 per step, 4 steps
            assert row["acs"] == pytest.approx(0.25 * 192 * 16 * 4) and row["macs"] == 0
