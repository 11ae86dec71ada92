"""Training data from the running system: pseudo-labels and user feedback."""
