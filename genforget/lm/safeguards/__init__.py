"""Safeguards of the LM loop: one guard with two bounds (the divergence guard on retain
perplexity, the calibrated stop's collateral watch on other people's extraction) over one
snapshot store (:mod:`~genforget.lm.safeguards.snapshots`), and checkpoints that save it."""
