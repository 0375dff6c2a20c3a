"""Defaults that the command line and the Python API share: one place for each.

Standard library only, so the command line can show them in ``--help`` without importing numpy.
"""

CONFIDENCE = 0.95  # of every interval dscbench computes and prints
THRESHOLD = 0.05  # the smallest relative change `compare` counts as faster or slower
