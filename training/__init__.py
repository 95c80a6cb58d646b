"""keywire training."""
