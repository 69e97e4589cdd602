"""The demo's ``neuron`` variant (genetic, neuron encoding); ``demo_neuron:quick`` is its smoke version.

What the demo trains is set in :mod:`gsnn.demo_configs`.
"""
from gsnn.demo_configs import variant_config_file


def get_config(arg=None):
    return variant_config_file("neuron", arg)
