"""Tiny models for the text-prompt tests, built offline: a random GroundingDINO with a Swin
backbone and BERT text encoder a few channels wide, a BERT tokenizer on an in-memory
vocabulary, and a small random SAM 2. Outputs are meaningless; shapes and flows are real."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch

from masklet.modeling.sam2 import SAM2Model, build_model
from tests.parity.reference import small_config

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "the", "dog", "red", "car",
         "cat", "bright", "square"]  # fmt: skip
IMAGE_SIDE = 64  # the detector's input resolution (shortest edge)


def build_tiny_grounding_dino(vocab_dir: Path) -> tuple[Any, Any]:
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor), random and tiny."""
    transformers = pytest.importorskip("transformers")
    vocab_file = vocab_dir / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n")
    tok_cls = transformers.BertTokenizer
    # transformers 5 takes `vocab`, 4.x `vocab_file`
    key = "vocab" if "vocab" in inspect.signature(tok_cls.__init__).parameters else "vocab_file"
    tokenizer = tok_cls(**{key: str(vocab_file)})
    swin = transformers.SwinConfig(
        embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
        image_size=IMAGE_SIDE, out_indices=[2, 3, 4],
    )  # fmt: skip
    bert = transformers.BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    config = transformers.GroundingDinoConfig(
        backbone_config=swin, text_config=bert, d_model=32, encoder_layers=1,
        decoder_layers=2,  # one decoder layer breaks transformers' bbox-head weight tying
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2,
        decoder_attention_heads=2, num_queries=12, max_text_len=32,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GroundingDinoForObjectDetection(config).eval()
    image_cls = getattr(transformers, "GroundingDinoImageProcessorPil", None) or (
        transformers.GroundingDinoImageProcessor
    )
    image_processor = image_cls(size={"shortest_edge": IMAGE_SIDE, "longest_edge": 96})
    processor = transformers.GroundingDinoProcessor(image_processor, tokenizer)
    return model, processor


@pytest.fixture(scope="session")
def tiny_grounding_dino(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    return build_tiny_grounding_dino(tmp_path_factory.mktemp("vocab"))


@pytest.fixture(scope="session")
def tiny_detector(tiny_grounding_dino: tuple[Any, Any]) -> Any:
    from masklet.text import GroundingDINODetector

    model, processor = tiny_grounding_dino
    return GroundingDINODetector.from_model(model, processor, device="cpu")


@pytest.fixture(scope="session")
def tiny_sam() -> SAM2Model:
    torch.manual_seed(0)
    return build_model(small_config("sam2.1_hiera_tiny", image_size=128)).eval()
