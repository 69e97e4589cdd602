"""The demo's ``neuron_r2`` variant (genetic, neuron encoding, two interaction rules); ``demo_neuron_r2:quick`` is its smoke version.

What the demo trains is set in :mod:`gsnn.demo_configs`.
"""
from gsnn.demo_configs import variant_config_file


def get_config(arg=None):
    return variant_config_file("neuron_r2", arg)
