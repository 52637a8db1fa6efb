"""``sam2-triton bench``: where the service stands, measured in one run on one machine.

Ratios (ours vs an alternative on the same input, same run) mean more than absolute figures
on noisy shared machines; every figure is written to JSON with the hardware it ran on.
"""
