"""Safeguards of the LM loop: the weight snapshot and guard, the calibrated stop, checkpoints."""
