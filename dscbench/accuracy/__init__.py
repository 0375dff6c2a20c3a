"""The accuracy cost of separable convolutions: both twins of a network trained from the same
seeds on one data set (``data``: what is read and checked; ``train``: the fixed recipe;
``summary``: intervals over seeds). ``dscbench accuracy`` (commands/accuracy.py) puts it next to
the twins' latency from a run; ``results/accuracy.py`` keeps it with that run."""
