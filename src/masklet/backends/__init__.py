"""Runtimes other than PyTorch for the model's heavy modules (`load_model(..., backend=...)`).

A backend swaps a `SAM2Model`'s submodules for stand-ins with the same calls and outputs;
the predictors, sessions and pipelines run unchanged on top.
"""

from masklet.backends.onnxruntime import BACKENDS, load_onnx_model, onnx_folder_for

__all__ = ["BACKENDS", "load_onnx_model", "onnx_folder_for"]
