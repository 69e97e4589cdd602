"""What the training and evolution loops share: interrupts, checkpoints, run records."""
