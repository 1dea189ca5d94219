"""First-party explainers."""
