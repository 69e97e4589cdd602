"""Moved to :mod:`gsnn.core.lif`; this name stays for the public API (``from gsnn import neurons``)."""
from gsnn.config import RESETS, UPDATE_FORMS, LIFConfig
from gsnn.core.lif import (ENCODERS, FULL_UNROLL_MAX_T, SURROGATES, LIFState, atan, decay_from_tau, direct_encode,
                           get_surrogate, initial_state, leak_for, lif_run, lif_step, make_lif_step, plif_init, plif_leak,
                           poisson_encode, sigmoid, triangle)

__all__ = ["RESETS", "UPDATE_FORMS", "LIFConfig", "ENCODERS", "FULL_UNROLL_MAX_T", "SURROGATES", "LIFState", "atan",
           "decay_from_tau", "direct_encode", "get_surrogate", "initial_state", "leak_for", "lif_run", "lif_step", "make_lif_step",
           "plif_init", "plif_leak", "poisson_encode", "sigmoid", "triangle"]
