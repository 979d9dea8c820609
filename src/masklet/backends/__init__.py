"""Runtimes other than PyTorch for the model's heavy modules (`load_model(..., backend=...)`).

A backend swaps a `SAM2Model`'s submodules for stand-ins with the same calls and outputs;
the predictors, sessions and pipelines run unchanged on top. `masklet.backends.onnxruntime`
runs a `masklet export onnx` folder. This package module stays light (the CLI imports it).
"""

BACKENDS = ("pytorch", "onnxruntime")

__all__ = ["BACKENDS"]
