"""The onnxruntime backend: a `SAM2Model` whose heavy modules run exported ONNX graphs.

`load_onnx_model(DIR)` reads an export folder (`masklet export onnx`), builds the model from
its manifest's config and swaps five submodules for adapters that call onnxruntime with the
same arguments and return the same outputs (`BackboneOutput`, `DecoderOutput`, tensors):

    image_encoder      -> image_encoder.onnx   (trunk, neck, conv_s0 / conv_s1 projections)
    sam_mask_decoder   -> mask_decoder.onnx    (every mask token; the choice among them and
                                                its conv_s0 / conv_s1 as identities here)
    memory_attention   -> memory_attention.onnx
    memory_encoder     -> memory_encoder.onnx
    obj_ptr_proj       -> object_pointer.onnx

Everything else (the prompt encoder, learned embeddings, memory selection, the predictors,
sessions and pipelines) is the PyTorch code, with the tensors of `loop_weights.safetensors`.
The graphs run on the CPU (onnxruntime's CPUExecutionProvider), fp32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from masklet.backends import BACKENDS
from masklet.config import ModelConfig
from masklet.errors import CheckpointError, InvalidInputError
from masklet.export.onnx import LOOP_WEIGHTS_NAME, MANIFEST_NAME
from masklet.modeling.mask_decoder import choose_outputs
from masklet.modeling.neck import BackboneOutput
from masklet.modeling.outputs import DecoderOutput
from masklet.modeling.position import PositionEmbeddingSine
from masklet.modeling.sam2 import SAM2Model

# the graphs the backend runs, by the submodule each replaces
GRAPHS = {
    "image_encoder": "image_encoder",
    "sam_mask_decoder": "mask_decoder",
    "memory_attention": "memory_attention",
    "memory_encoder": "memory_encoder",
    "obj_ptr_proj": "object_pointer",
}
INSTALL_HINT = "pip install onnxruntime (or pip install masklet[onnx])"


def onnx_folder_for(name_or_path: str | os.PathLike[str], backend: str | None) -> Path | None:
    """The ONNX export folder to load, or None for the PyTorch backend; errors name the fix
    for a backend that does not fit the model given."""
    if backend is not None and backend not in BACKENDS:
        raise InvalidInputError(
            f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}"
        )
    folder = Path(name_or_path)
    is_export = (folder / MANIFEST_NAME).is_file()
    if backend == "onnxruntime" and not is_export:
        raise CheckpointError(
            f"the onnxruntime backend loads a folder from `masklet export onnx`, and "
            f"{name_or_path} is not one; export it first: masklet export onnx --model "
            f"{name_or_path} --out DIR, then pass DIR as the model"
        )
    if backend == "pytorch" and is_export:
        raise CheckpointError(
            f"{name_or_path} is an ONNX export: load it with backend='onnxruntime' "
            f"(--backend onnxruntime), or pass the original checkpoint for PyTorch"
        )
    return folder if is_export else None


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise InvalidInputError(
            f"the onnxruntime backend needs onnxruntime: {INSTALL_HINT}"
        ) from err
    return onnxruntime


class Graph:
    """One onnxruntime session: named torch tensors in, torch tensors out (fp32, CPU)."""

    def __init__(self, ort: Any, path: Path, options: Any) -> None:
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, **feeds: Tensor) -> list[Tensor]:
        arrays = {
            name: np.ascontiguousarray(feeds[name].detach().cpu().float().numpy())
            for name in self.input_names
        }
        return [torch.from_numpy(x) for x in self.session.run(None, arrays)]


class OnnxImageEncoder(nn.Module):
    """`ImageEncoder` stand-in: [B, 3, S, S] -> `BackboneOutput`, whose high-resolution maps
    are already projected by conv_s0 / conv_s1 (the decoder stand-in has identities there)."""

    def __init__(self, graph: Graph, config: ModelConfig) -> None:
        super().__init__()
        self.graph = graph
        # parameter-free and cached per size: the same encoding the neck computes
        self.position_encoding = PositionEmbeddingSine(config.neck.d_model)

    def forward(self, sample: Tensor) -> BackboneOutput:
        _, *maps, features, pos = self.graph(images=sample)  # image_embed is image-mode only
        levels = [*maps, features]
        positions = [self.position_encoding(x) for x in maps] + [pos]
        return BackboneOutput(
            vision_features=features, vision_pos_enc=positions, backbone_fpn=levels
        )


class OnnxMaskDecoder(nn.Module):
    """`MaskDecoder` stand-in with the same call; the graph returns every token's outputs
    and `choose_outputs` picks what `MaskDecoder.forward` would."""

    def __init__(self, graph: Graph, config: ModelConfig) -> None:
        super().__init__()
        self.graph = graph
        self.config = config.mask_decoder
        self.use_multimask_token_for_obj_ptr = config.use_multimask_token_for_obj_ptr
        # the exported image encoder applies these projections already
        self.conv_s0, self.conv_s1 = nn.Identity(), nn.Identity()

    # the signature of MaskDecoder.forward (kept short: a mirror, not new logic)
    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Tensor, *, multimask_output: bool, repeat_image: bool,
                high_res_features: list[Tensor] | None = None) -> DecoderOutput:  # fmt: skip
        """As `MaskDecoder.forward`: [B or 1, C, h, w] embeddings (1 with repeat_image)."""
        batch = sparse_prompt_embeddings.shape[0]
        high_res = list(high_res_features or [])
        if repeat_image:  # one image, a batch of prompts on it
            image_embeddings = image_embeddings.repeat_interleave(batch, dim=0)
            high_res = [x.repeat_interleave(batch, dim=0) for x in high_res]
        if image_embeddings.shape[0] != batch:
            raise InvalidInputError(
                f"image embeddings have batch {image_embeddings.shape[0]} but the prompts "
                f"have batch {batch}; pass repeat_image=True to share one image"
            )
        feeds = dict(zip(["high_res_0", "high_res_1"], high_res, strict=False))
        masks, ious, tokens, scores = self.graph(
            image_embed=image_embeddings,
            image_pe=image_pe,
            sparse_embeddings=sparse_prompt_embeddings,
            dense_embeddings=dense_prompt_embeddings.expand(batch, -1, -1, -1),
            **feeds,
        )
        return choose_outputs(
            DecoderOutput(masks=masks, ious=ious, tokens=tokens, object_score_logits=scores),
            multimask_output=multimask_output,
            config=self.config,
            use_multimask_token_for_obj_ptr=self.use_multimask_token_for_obj_ptr,
            training=False,
        )


class OnnxMemoryAttention(nn.Module):
    """`MemoryAttention` stand-in: the graph takes the spatial memories and the pointer
    tokens as two inputs with their own lengths, so any number of either works."""

    def __init__(self, graph: Graph, config: ModelConfig) -> None:
        super().__init__()
        self.graph = graph
        self.side = config.image_size // config.backbone_stride

    # the signature of MemoryAttention.forward (kept short: a mirror, not new logic)
    def forward(self, curr: Tensor, memory: Tensor, curr_pos: Tensor | None,
                memory_pos: Tensor | None, num_obj_ptr_tokens: int = 0) -> Tensor:  # fmt: skip
        """curr / curr_pos [HW, B, C]; memory / memory_pos [M, B, C_mem], the last
        `num_obj_ptr_tokens` of them object pointers -> [HW, B, C]."""
        if curr_pos is None or memory_pos is None:
            raise InvalidInputError("the exported memory attention needs both position encodings")
        hw, b, c = curr.shape
        if hw != self.side * self.side:
            raise InvalidInputError(
                f"the exported memory attention takes a {self.side} x {self.side} feature grid, "
                f"got {hw} tokens; export the model again for this image size"
            )

        def to_map(x: Tensor) -> Tensor:
            return x.permute(1, 2, 0).reshape(b, c, self.side, self.side)  # [HW, B, C] -> map

        spatial = memory.shape[0] - num_obj_ptr_tokens
        (fused,) = self.graph(
            vision_features=to_map(curr),
            vision_pos=to_map(curr_pos),
            memory=memory[:spatial],
            memory_pos=memory_pos[:spatial],
            object_pointers=memory[spatial:],
            object_pointers_pos=memory_pos[spatial:],
        )
        return fused.flatten(2).permute(2, 0, 1)  # [B, C, h, w] -> [HW, B, C]


class OnnxMemoryEncoder(nn.Module):
    """`MemoryEncoder` stand-in: (features [B, C, h, w], masks [B, 1, S, S]) -> (memory,
    position encoding), each [B, C_mem, h, w]."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.graph = graph

    def forward(
        self, pix_feat: Tensor, masks: Tensor, skip_mask_sigmoid: bool = False
    ) -> tuple[Tensor, Tensor]:
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        memory, pos = self.graph(vision_features=pix_feat, mask_for_memory=masks)
        return memory, pos


class OnnxObjectPointer(nn.Module):
    """`obj_ptr_proj` stand-in: mask tokens [B, C] -> object pointers [B, C]."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, mask_token: Tensor) -> Tensor:
        (pointer,) = self.graph(mask_token=mask_token)
        return pointer


def read_manifest(directory: Path) -> dict[str, Any]:
    """The export's manifest, after checking that every file the backend needs is there."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{directory} is not an ONNX export (no {MANIFEST_NAME}); write one with "
            f"`masklet export onnx --model NAME --out {directory}`"
        )
    manifest = json.loads(path.read_text())
    parts = manifest.get("parts", {})
    missing = [g for g in GRAPHS.values() if g not in parts]
    missing += [
        parts[g]["file"]
        for g in GRAPHS.values()
        if g in parts and not (directory / parts[g]["file"]).is_file()
    ]
    if not (directory / LOOP_WEIGHTS_NAME).is_file():
        missing.append(LOOP_WEIGHTS_NAME)
    if manifest.get("format") != "masklet-onnx" or missing:
        raise CheckpointError(
            f"the ONNX export in {directory} is incomplete or from an older masklet (missing: "
            f"{', '.join(missing) or 'the masklet-onnx format tag'}); export it again with "
            f"`masklet export onnx`"
        )
    return manifest


def _check_image_size(
    manifest: dict[str, Any], config: ModelConfig, expected: ModelConfig | None
) -> None:
    images = manifest["parts"]["image_encoder"]["inputs"][0]["shape"]
    if images[-1] != config.image_size:
        raise CheckpointError(
            f"the manifest says image_size {config.image_size} but image_encoder.onnx takes "
            f"{images[-1]} px images; export the model again"
        )
    if expected is not None and expected.image_size != config.image_size:
        raise InvalidInputError(
            f"this ONNX export was made for {config.image_size} px images, not "
            f"{expected.image_size}; export again with `masklet export onnx --image-size "
            f"{expected.image_size}`"
        )


def load_onnx_model(
    directory: str | os.PathLike[str],
    *,
    config: ModelConfig | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> SAM2Model:
    """A `SAM2Model` (eval mode, CPU) whose heavy modules run the graphs in `directory`.

    `config`, when given, must match the export's image size (graphs bake it in); `threads`
    sets onnxruntime's intra-op threads (default: its own choice).
    """
    if device is not None and torch.device(device).type != "cpu":
        raise InvalidInputError(
            f"the onnxruntime backend runs on the CPU here, not {device}; pass device='cpu' "
            f"or use the pytorch backend"
        )
    ort = _require_onnxruntime()
    folder = Path(directory)
    manifest = read_manifest(folder)
    cfg = ModelConfig.from_dict(manifest["model_config"])
    _check_image_size(manifest, cfg, config)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: shape-merge warnings of traced graphs are noise
    if threads is not None:
        options.intra_op_num_threads = threads

    def graph(name: str) -> Graph:
        return Graph(ort, folder / manifest["parts"][name]["file"], options)

    with torch.device("meta"):  # no memory or init time for the weights the graphs hold
        model = SAM2Model(cfg)
    adapters: dict[str, nn.Module] = {
        "image_encoder": OnnxImageEncoder(graph("image_encoder"), cfg),
        "sam_mask_decoder": OnnxMaskDecoder(graph("mask_decoder"), cfg),
        "memory_attention": OnnxMemoryAttention(graph("memory_attention"), cfg),
        "memory_encoder": OnnxMemoryEncoder(graph("memory_encoder")),
        "obj_ptr_proj": OnnxObjectPointer(graph("object_pointer")),
    }
    for name, adapter in adapters.items():
        model.add_module(name, adapter)  # replaces the PyTorch submodule of that name
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(folder / LOOP_WEIGHTS_NAME)), strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"the ONNX export in {folder} lacks the tensors {left}; export again")
    return model.eval()
