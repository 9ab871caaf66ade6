"""The deterministic SimPy world (lands with the simulator issue)."""
