"""Moved to :mod:`gsnn.evolution.genome`; this name stays for the public API (``from gsnn import genome``)."""
from gsnn.evolution.genome import (EncodingMatrix, GenomeSpec, build_params, default_genome, genome_size, genome_spec,
                                   genome_summary, interaction_matrix)

__all__ = ["EncodingMatrix", "GenomeSpec", "build_params", "default_genome", "genome_size", "genome_spec",
           "genome_summary", "interaction_matrix"]
