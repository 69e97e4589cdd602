"""Moved to :mod:`gsnn.evolution.fitness`; this name stays for the public API (``from gsnn import fitness``)."""
from gsnn.evolution.fitness import (ACCURACY_TERMS, ACTIVITY_OPERATORS, SpikeActivity, activity_difference,
                                    activity_entropy, spike_activity, SCHEDULES, SPATIAL_OPERATORS, TEMPORAL_OPERATORS, InnerLoopTrace, combine,
                                    effective_rank, fitness, get_operator, lambda_schedule, learning_curve_area,
                                    loss_start_end, make_fitness, spatial_entropy, temporal_difference)

__all__ = ["ACCURACY_TERMS", "ACTIVITY_OPERATORS", "SpikeActivity", "activity_difference", "activity_entropy",
           "spike_activity", "SCHEDULES", "SPATIAL_OPERATORS", "TEMPORAL_OPERATORS", "InnerLoopTrace", "combine", "effective_rank",
           "fitness", "get_operator", "lambda_schedule", "learning_curve_area", "loss_start_end", "make_fitness",
           "spatial_entropy", "temporal_difference"]
