"""First-party scorers."""
