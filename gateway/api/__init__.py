"""HTTP API blueprints, one module per area."""
