"""Model analysis: parameters and FLOPs, reference parity."""
