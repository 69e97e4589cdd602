"""The demo's ``position`` variant (genetic, position encoding); ``demo_position:quick`` is its smoke version.

What the demo trains is set in :mod:`gsnn.demo_configs`.
"""
from gsnn.demo_configs import variant_config_file


def get_config(arg=None):
    return variant_config_file("position", arg)
