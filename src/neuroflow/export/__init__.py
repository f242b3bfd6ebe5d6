"""Export: one self-contained ONNX graph from raw feature columns to predictions."""
