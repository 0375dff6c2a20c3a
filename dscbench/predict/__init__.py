"""Latency predicted for conv layers and networks that were not measured: a model per backend,
thread count, dtype and variant fitted on a layer sweep's rows (``features``: what a layer is
to the model; ``fit``: the candidate models and the cross-validation that chooses one;
``network``: a network as its conv layers and its other ops; ``store``: the predictor kept with
the run it came from). ``dscbench predict`` (commands/predict.py) prints it."""
