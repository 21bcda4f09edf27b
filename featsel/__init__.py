"""featsel: pick the feature space for Sinkhorn generator training, before training."""

__version__ = "0.1.0"
