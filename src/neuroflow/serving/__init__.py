"""Serving the champion: an HTTP scoring server (MLflow's protocol) and batch prediction.

Both score raw rows through the registered ONNX artifact with onnxruntime (scorer.py), the same
code the promotion gate uses.
"""
