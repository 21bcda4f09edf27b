"""Training backend: Sinkhorn-CFG one-step generator training (imports featsel, never the reverse)."""
