"""The older demo's most compressed variant, ``neuron`` g=12 (genetic, neuron encoding, 93% fewer parameters; not in ``gsnn demo``'s default rows); ``demo_neuron:quick`` is its smoke version.

What the demo trains is set in :mod:`gsnn.demo_configs`.
"""
from gsnn.demo_configs import variant_config_file


def get_config(arg=None):
    return variant_config_file("neuron", arg)
