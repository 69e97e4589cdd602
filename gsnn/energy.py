"""Moved to :mod:`gsnn.analysis.energy`; this name stays for the public API (``from gsnn import energy``)."""
from gsnn.analysis.energy import (BYTES_PER_PARAM, PJ_PER_AC, PJ_PER_MAC, ParamReport, energy_report, firing_rates,
                                  input_densities, parameter_report, populations, synaptic_operations)

__all__ = ["BYTES_PER_PARAM", "PJ_PER_AC", "PJ_PER_MAC", "ParamReport", "energy_report", "firing_rates",
           "input_densities", "parameter_report", "populations", "synaptic_operations"]
