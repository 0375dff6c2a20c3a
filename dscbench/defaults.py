"""Defaults that the command line and the Python API share: one place for each.

Standard library only, so the command line can show them in ``--help`` without importing numpy.
"""

CONFIDENCE = 0.95  # of every interval dscbench computes and prints
THRESHOLD = 0.05  # the smallest relative change `compare` counts as faster or slower
POWER = 0.8  # of the minimum detectable change each compared row reports
# Worker processes per environment: with the default 5 rounds, each round in its own process.
# Intervals are over processes (their rounds averaged first): rounds of one process share what
# it drew at start-up, so they are not independent (benchmarks/REPORT-noise.md).
PROCESSES = 5
# The between-run standard deviation of a speedup (log scale): how far the speedup itself
# moves from one run to the next (the machine's phases), which nothing inside one run can see.
# The rerun interval (speedup_rerun_low/high) adds it; run --between-run-sd sets it. Fitted on
# 10 pairs of back-to-back runs of the 2-core development VM (busy: rounds disagreeing by
# 5-20%) and checked on 10 other pairs, where the rerun interval then held the next run's
# estimate in 38 of 40 rows (benchmarks/REPORT-decide.md, "coverage", commit 3fa515b).
BETWEEN_RUN_SD = 0.021
