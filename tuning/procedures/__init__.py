"""Procedures built on sweeps: seed sizing to a target MDE, extending a results folder, choosing iteration counts."""
