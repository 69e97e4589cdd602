"""Analysis of trained and traced networks: parameters, firing, synaptic operations and energy; robustness; plots."""
