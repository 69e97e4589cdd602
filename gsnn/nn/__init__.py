"""Thin Flax modules over :mod:`gsnn.core`: layers, the networks of the model zoo, layer specs."""
