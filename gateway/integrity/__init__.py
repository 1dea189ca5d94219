"""Tamper evidence for the decision log: record hashes, sealed Merkle checkpoints, verify.

Inserts stay free of any global lock: a decision row is written as before, and a
*sealer* later assigns committed rows to the chain in batches (``decision_seals``),
closing each batch with a checkpoint whose hash covers the batch's Merkle root and the
previous checkpoint's hash (``decision_checkpoints``). ``verify`` recomputes it all.
"""
