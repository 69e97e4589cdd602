"""The demo's ``direct_w033`` variant (direct weights, narrowed to the two-rule net's size); ``demo_direct_w033:quick`` is its smoke version.

What the demo trains is set in :mod:`gsnn.demo_configs`.
"""
from gsnn.demo_configs import variant_config_file


def get_config(arg=None):
    return variant_config_file("direct_w033", arg)
