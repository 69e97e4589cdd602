"""The demo's ``evolved`` variant (genetic, position encoding with STE-evolved initial wiring; a row of ``gsnn demo --evolve``); ``demo_evolved:quick`` is its smoke version.

What the demo trains is set in :mod:`gsnn.demo_configs`.
"""
from gsnn.demo_configs import variant_config_file


def get_config(arg=None):
    return variant_config_file("evolved", arg)
