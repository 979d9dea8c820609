"""Export of the model's parts to ONNX (`masklet export onnx`)."""

from masklet.export.onnx import ExportedPart, export_onnx

__all__ = ["ExportedPart", "export_onnx"]
