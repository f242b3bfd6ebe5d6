"""neuroflow: raw data to a promoted, servable PyTorch network, reproducibly."""

__version__ = "0.1.0"
