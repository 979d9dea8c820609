"""Evaluation: DAVIS 2017 region (J) and boundary (F) metrics on folders or arrays."""

from masklet.eval.davis import EvalResult, ObjectScore, SequenceScore, evaluate, evaluate_arrays
from masklet.eval.metrics import boundary_f_measure, region_similarity

__all__ = [
    "EvalResult",
    "ObjectScore",
    "SequenceScore",
    "boundary_f_measure",
    "evaluate",
    "evaluate_arrays",
    "region_similarity",
]
