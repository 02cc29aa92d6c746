"""Fan-out benchmark of zou-events against Zou 1.0.97's own event stream (python -m bench.run)."""
