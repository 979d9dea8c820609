"""Registry, cache, download (no network: the opener is replaced), reading, detection, loading."""

from __future__ import annotations

import dataclasses
import io
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

from masklet import checkpoints, state_dicts
from masklet.checkpoint_files import read_state_dict
from masklet.checkpoints import (
    CHECKPOINTS,
    cache_dir,
    cached_path,
    checkpoint_info,
    download,
    load_model,
    resolve_device,
)
from masklet.config import ModelConfig
from masklet.errors import CheckpointError, InvalidInputError
from masklet.state_dicts import detect_config
from tests.parity.reference import perturbed_state_dict, reference_model, small_config

TINY = "sam2.1_hiera_tiny"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MASKLET_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, Tensor]:
    return perturbed_state_dict(reference_model(small_config(TINY)), seed=5)


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory: pytest.TempPathFactory, tiny_state: dict[str, Tensor]) -> Path:
    """A small checkpoint in the official file layout: {"model": state_dict}."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"model": tiny_state}, path)
    return path


# ---------------------------------------------------------------------------------- registry


def test_registry_covers_every_variant() -> None:
    assert sorted(CHECKPOINTS) == sorted(ModelConfig.names())
    for name, info in CHECKPOINTS.items():
        folder = "092824" if name.startswith("sam2.1") else "072824"
        assert info.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/{folder}/{name}.pt"
        assert info.hf_filename == info.filename == f"{name}.pt"
        assert info.hf_repo == "facebook/" + name.replace("_", "-")
        assert info.size_bytes is None or info.size_bytes > 100_000_000
    assert CHECKPOINTS["sam2.1_hiera_base_plus"].hf_repo == "facebook/sam2.1-hiera-base-plus"


def test_registry_names_accept_common_spellings() -> None:
    for spelling in ("sam2.1-hiera-tiny", "facebook/sam2.1-hiera-tiny", "SAM2.1_hiera_tiny.pt"):
        assert checkpoint_info(spelling).name == TINY
    assert checkpoint_info("sam2_hiera_b+").name == "sam2_hiera_base_plus"


def test_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(
        CheckpointError, match="unknown model 'sam3'.*sam2.1_hiera_large.*masklet-nano-synthetic"
    ):
        checkpoint_info("sam3")
    with pytest.raises(CheckpointError, match="sam2_hiera_tiny, sam2_hiera_small"):
        load_model("sam3_hiera_tiny")


# ------------------------------------------------------------------------------------- cache


def test_cache_dir_honours_masklet_cache_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MASKLET_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "masklet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "masklet"


def test_cached_path_is_none_until_the_file_exists(cache: Path) -> None:
    assert cached_path(TINY) is None
    cache.mkdir()
    (cache / f"{TINY}.pt").write_bytes(b"x")
    assert cached_path(TINY) == cache / f"{TINY}.pt"


# ---------------------------------------------------------------------------------- download


class _Response(io.BytesIO):
    """Enough of an HTTP response for the downloader: read(), headers, context manager."""

    def __init__(self, payload: bytes, length: int | None = None) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload) if length is None else length)}


def _no_network(*args: object, **kwargs: object) -> _Response:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def _no_hub(*args: object, **kwargs: object) -> Path:
    raise OSError("We couldn't connect to 'https://huggingface.co'\nCheck your connection.")


def _unsized(monkeypatch: pytest.MonkeyPatch, name: str = TINY) -> None:
    """Our test payloads are not the published size: forget the size for this test."""
    unsized = dataclasses.replace(CHECKPOINTS[name], size_bytes=None)
    monkeypatch.setitem(checkpoints.CHECKPOINTS, name, unsized)


def test_download_serves_the_url_bytes_into_the_cache(
    cache: Path, tiny_pt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = tiny_pt.read_bytes()
    opened: list[str] = []

    def opener(url: str, timeout: float) -> _Response:
        opened.append(url)
        return _Response(payload)

    monkeypatch.setattr(checkpoints, "_open_url", opener)
    monkeypatch.setattr(checkpoints, "_hf_download", _no_hub)
    _unsized(monkeypatch)

    path = download(TINY, progress=False)

    assert opened == [CHECKPOINTS[TINY].url]
    assert path == cache / f"{TINY}.pt" and path.read_bytes() == payload
    assert [p.name for p in cache.iterdir()] == [f"{TINY}.pt"]  # no temporary left
    state = read_state_dict(path)
    assert torch.equal(
        state["no_obj_ptr"], torch.load(tiny_pt, weights_only=True)["model"]["no_obj_ptr"]
    )
    # cached: a second call does not touch the network
    monkeypatch.setattr(checkpoints, "_open_url", _no_network)
    assert download(TINY) == path


def test_download_falls_back_to_the_hub(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def hub(repo_id: str, filename: str, local_dir: Path) -> Path:
        assert (repo_id, filename) == ("facebook/sam2.1-hiera-tiny", f"{TINY}.pt")
        (local_dir / ".cache").mkdir()  # the Hub client's metadata folder
        (local_dir / filename).write_bytes(b"weights")
        return local_dir / filename

    monkeypatch.setattr(checkpoints, "_open_url", _no_network)
    monkeypatch.setattr(checkpoints, "_hf_download", hub)
    _unsized(monkeypatch)

    path = download(TINY, progress=False)

    assert path.read_bytes() == b"weights"
    assert [p.name for p in cache.iterdir()] == [f"{TINY}.pt"]


def test_offline_download_fails_with_one_actionable_line(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "_open_url", _no_network)
    monkeypatch.setattr(checkpoints, "_hf_download", _no_hub)

    with pytest.raises(CheckpointError) as caught:
        download(TINY)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint '{TINY}' is not in the cache ({cache / TINY}.pt)")
    assert "Temporary failure in name resolution" in message and "huggingface.co" in message
    assert f"`masklet download {TINY}`" in message and "load_model(path)" in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unreachable_hub_fails_at_once_without_calling_its_client(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, the Hub client would retry for ~25 s; the probe's reason is reported instead."""
    import huggingface_hub

    def client_must_not_run(**kwargs: object) -> str:
        raise AssertionError("hf_hub_download called although the Hub is out of reach")

    reason = "cannot reach huggingface.co:443 ([Errno -2] Name or service not known)"
    monkeypatch.setattr(checkpoints, "_open_url", _no_network)
    monkeypatch.setattr(checkpoints, "hub_unreachable", lambda: reason)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", client_must_not_run)

    with pytest.raises(CheckpointError) as caught:
        download(TINY)

    message = str(caught.value)
    assert (
        "\n" not in message
        and f"Hugging Face Hub facebook/sam2.1-hiera-tiny/sam2.1_hiera_tiny.pt: {reason}" in message
    )
    assert "load a local file with load_model(path)" in message
    assert not cache.exists() or list(cache.iterdir()) == []  # no staging folder left


def test_truncated_download_leaves_no_file(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the server announces more bytes than it sends (connection dropped)
    monkeypatch.setattr(checkpoints, "_open_url", lambda url, timeout: _Response(b"abc", length=10))
    monkeypatch.setattr(checkpoints, "_hf_download", _no_hub)
    _unsized(monkeypatch)

    with pytest.raises(CheckpointError, match="got 3 bytes, expected 10"):
        download(TINY, progress=False)
    assert list(cache.iterdir()) == []


def test_download_checks_the_published_size(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints, "_open_url", lambda url, timeout: _Response(b"abc"))
    monkeypatch.setattr(checkpoints, "_hf_download", _no_hub)
    with pytest.raises(CheckpointError, match=f"expected {CHECKPOINTS[TINY].size_bytes}"):
        download(TINY, progress=False)
    assert list(cache.iterdir()) == []


# ----------------------------------------------------------------------------------- reading


def test_official_pt_round_trip(tiny_pt: Path, tiny_state: dict[str, Tensor]) -> None:
    state = read_state_dict(tiny_pt)
    assert sorted(state) == sorted(tiny_state)
    assert all(torch.equal(state[k], v) for k, v in tiny_state.items())


def test_bare_state_dict_is_accepted(tmp_path: Path, tiny_state: dict[str, Tensor]) -> None:
    torch.save(tiny_state, tmp_path / "bare.pth")
    assert torch.equal(
        read_state_dict(tmp_path / "bare.pth")["no_mem_embed"], tiny_state["no_mem_embed"]
    )


def test_hf_safetensors_round_trip(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from tests import test_hf_keys as test_hf

    cfg = small_config(TINY)
    official = perturbed_state_dict(reference_model(cfg), seed=7)
    hf_state = test_hf.official_to_hf(official)
    # safetensors refuses shared storage; the converter writes the tied copy separately too
    save_file(
        {k: v.contiguous().clone() for k, v in hf_state.items()}, tmp_path / "model.safetensors"
    )

    state = read_state_dict(tmp_path / "model.safetensors")

    assert sorted(state) == sorted(official)
    assert all(torch.equal(state[k], v) for k, v in official.items())


def test_official_safetensors_is_read_as_is(tmp_path: Path, tiny_state: dict[str, Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(tiny_state, tmp_path / "official.safetensors")
    assert sorted(read_state_dict(tmp_path / "official.safetensors")) == sorted(tiny_state)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: .*nope\.pt"):
        read_state_dict(tmp_path / "nope.pt")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_file(
    tmp_path: Path, tiny_pt: Path, tiny_state: dict[str, Tensor], suffix: str
) -> None:
    source = tiny_pt
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        source = tmp_path / "whole.safetensors"
        save_file(tiny_state, source)
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(source.read_bytes()[: source.stat().st_size // 2])

    with pytest.raises(CheckpointError) as caught:
        read_state_dict(broken)

    message = str(caught.value)
    assert str(broken) in message and "truncated or corrupt" in message
    assert "download it again" in message and "\n" not in message


def test_not_a_checkpoint(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "trainer.pt")
    with pytest.raises(CheckpointError, match=r"trainer\.pt is not a SAM 2 checkpoint.*'epoch'"):
        read_state_dict(tmp_path / "trainer.pt")
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.pt is not a checkpoint: it is a text file"):
        read_state_dict(tmp_path / "notes.pt")


def test_an_image_given_as_checkpoint_is_named_and_not_called_damaged(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "photo.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    for name, kind in (("photo.jpg", "a JPEG image"), ("photo.png", "a PNG image")):
        with pytest.raises(CheckpointError) as caught:
            read_state_dict(tmp_path / name)
        message = str(caught.value)
        assert f"{name} is not a checkpoint: it is {kind}" in message
        assert "download it again" not in message and "corrupt" not in message


# --------------------------------------------------------------------------------- detection


def _full_size_state_dict(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Tensor]:
    """Shapes of a full-size variant without allocating it: built on the meta device."""
    real_linspace = torch.linspace
    # the reference trunk calls .item() on a linspace for its drop-path rates
    monkeypatch.setattr(
        torch, "linspace", lambda *a, **k: real_linspace(*a, **{**k, "device": "cpu"})
    )
    with torch.device("meta"):
        model = reference_model(ModelConfig.named(name))
    monkeypatch.setattr(torch, "linspace", real_linspace)
    return model.state_dict()


@pytest.mark.parametrize("name", ModelConfig.names())
def test_detect_config_on_every_full_size_variant(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _full_size_state_dict(name, monkeypatch)
    assert detect_config(state) == ModelConfig.named(name)


def test_detect_config_refuses_unknown_layouts(tiny_state: dict[str, Tensor]) -> None:
    # the shrunk test trunk (width 16) is no official variant
    with pytest.raises(CheckpointError, match="trunk width 16, blocks per stage \\(1, 2, 7, 2\\)"):
        detect_config(tiny_state)
    with pytest.raises(CheckpointError, match="no Hiera trunk weights"):
        detect_config({"encoder.weight": torch.zeros(1)})


# ----------------------------------------------------------------------------------- loading


@pytest.fixture
def reference_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the reference SAM2Base (official key names) in place of masklet's model."""
    monkeypatch.setattr(checkpoints, "_build_model", reference_model)


def test_load_model_from_a_path_with_a_config(
    reference_builder: None, tiny_pt: Path, tiny_state: dict[str, Tensor]
) -> None:
    model = load_model(tiny_pt, device="cpu", config=small_config(TINY))
    assert not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in tiny_state.items())


def test_load_model_by_name_uses_the_cache_and_the_named_config(
    reference_builder: None,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_state: dict[str, Tensor],
) -> None:
    cache.mkdir()
    torch.save({"model": tiny_state}, cache / f"{TINY}.pt")
    monkeypatch.setattr(checkpoints, "_open_url", _no_network)
    built: list[ModelConfig] = []

    def build(config: ModelConfig) -> torch.nn.Module:
        built.append(config)
        return reference_model(small_config(TINY))  # the cached weights are the small model's

    monkeypatch.setattr(checkpoints, "_build_model", build)
    model = load_model("sam2.1-hiera-tiny")
    assert built == [ModelConfig.named(TINY)]
    assert torch.equal(model.state_dict()["no_obj_ptr"], tiny_state["no_obj_ptr"])


def test_load_model_by_name_offline_reports_the_cache_path(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "_open_url", _no_network)
    monkeypatch.setattr(checkpoints, "_hf_download", _no_hub)
    with pytest.raises(CheckpointError) as caught:
        load_model(TINY)
    message = str(caught.value)
    assert str(cache / f"{TINY}.pt") in message
    # each failed source is named by where it was fetched from, then why it failed
    assert f"{CHECKPOINTS[TINY].url}: <urlopen error" in message
    assert "facebook/sam2.1-hiera-tiny/sam2.1_hiera_tiny.pt: We couldn't connect" in message
    assert "official URL:" not in message
    # Python words in the library, the bundled model as the offline way out
    assert "load_model(path)" in message and "--checkpoint" not in message
    assert "'masklet-nano-synthetic' (works offline" in message


def test_wrong_variant_lists_the_missing_keys(reference_builder: None, tmp_path: Path) -> None:
    v20 = reference_model(small_config("sam2_hiera_tiny")).state_dict()
    torch.save({"model": v20}, tmp_path / "v20.pt")

    with pytest.raises(CheckpointError) as caught:
        load_model(tmp_path / "v20.pt", config=small_config(TINY))

    message = str(caught.value)
    assert (
        "3 missing keys: no_obj_embed_spatial, obj_ptr_tpos_proj.weight, obj_ptr_tpos_proj.bias"
        in message
    )
    assert "SAM 2.0 checkpoint loaded as 2.1" in message and "unexpected" not in message


def test_extra_keys_are_listed_as_unexpected(
    reference_builder: None, tmp_path: Path, tiny_state: dict[str, Tensor]
) -> None:
    extra = dict(tiny_state)
    for i in range(12):
        extra[f"adapter.{i}.weight"] = torch.zeros(2)
    torch.save({"model": extra}, tmp_path / "extra.pt")

    with pytest.raises(CheckpointError) as caught:
        load_model(tmp_path / "extra.pt", config=small_config(TINY))

    message = str(caught.value)
    assert "12 unexpected keys: adapter.0.weight, adapter.1.weight" in message
    assert "adapter.9.weight, ..." in message and "adapter.10.weight" not in message
    assert "missing" not in message


def test_wrong_size_reports_shapes(reference_builder: None, tiny_pt: Path) -> None:
    wider = small_config(TINY).with_trunk(embed_dim=32)
    with pytest.raises(CheckpointError) as caught:
        load_model(tiny_pt, config=wider)
    message = str(caught.value)
    assert "with the wrong shape (checkpoint vs model)" in message
    assert "image_encoder.trunk.pos_embed (1, 16, 7, 7) vs (1, 32, 7, 7)" in message
    assert "another model size" in message


@pytest.mark.parametrize(
    ("keep", "cause"),
    [
        (lambda k: k.startswith("sam_mask_decoder"), "probably not a SAM 2 checkpoint"),
        (lambda k: not k.startswith("memory_attention.layers"), "only part of the video weights"),
    ],
)
def test_partial_checkpoints_name_the_likely_cause(
    reference_builder: None,
    tmp_path: Path,
    tiny_state: dict[str, Tensor],
    keep: Callable[[str], bool],
    cause: str,
) -> None:
    kept = {k: v for k, v in tiny_state.items() if keep(k)}
    torch.save(kept, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=cause) as caught:
        load_model(tmp_path / "partial.pt", config=small_config(TINY))
    assert f"{len(tiny_state) - len(kept)} missing keys" in str(caught.value)


def test_an_image_only_checkpoint_loads_and_refuses_video(
    reference_builder: None, tmp_path: Path, tiny_state: dict[str, Tensor]
) -> None:
    from masklet.checkpoint_files import require_video_weights

    kept = {
        k: v
        for k, v in tiny_state.items()
        if k.startswith(("image_encoder", "sam_", "no_mem_embed"))
    }
    torch.save(kept, tmp_path / "image_only.pt")
    model = load_model(tmp_path / "image_only.pt", config=small_config(TINY))
    assert len(model.missing_video_weights) == len(tiny_state) - len(kept) > 0
    for key, value in kept.items():
        assert torch.equal(model.state_dict()[key], value)
    with pytest.raises(CheckpointError, match=r"image-only checkpoint.*cannot track video"):
        require_video_weights(model)


def test_load_model_detects_the_variant_of_a_file(
    reference_builder: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path without a config: the variant comes from detect_config."""
    state = reference_model(small_config(TINY)).state_dict()
    torch.save({"model": state}, tmp_path / "x.pt")
    seen: list[dict[str, Tensor]] = []

    def detect(state_dict: dict[str, Tensor]) -> ModelConfig:
        seen.append(state_dict)
        return small_config(TINY)  # detect_config knows only full-size variants

    monkeypatch.setattr(state_dicts, "detect_config", detect)  # load_model imports it per call
    model = load_model(str(tmp_path / "x.pt"))
    assert len(seen) == 1 and sorted(seen[0]) == sorted(state)
    assert torch.equal(model.state_dict()["no_mem_embed"], state["no_mem_embed"])


def test_load_model_with_masklet_build_model(tiny_pt: Path, tiny_state: dict[str, Tensor]) -> None:
    model = load_model(tiny_pt, device="cpu", config=small_config(TINY))
    assert type(model).__module__ == "masklet.modeling.sam2" and not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in tiny_state.items())


# ------------------------------------------------------------------------------------ device


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("cuda")


def test_resolve_device_rejects_bad_and_unavailable_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_a_checkpoint_carrying_its_config_loads_without_a_variant(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    import torch

    from masklet.checkpoint_files import stored_config
    from masklet.checkpoints import load_model
    from masklet.config import ModelConfig
    from masklet.modeling.sam2 import build_model

    cfg = dataclasses.replace(
        ModelConfig.named("sam2.1_hiera_tiny").with_trunk(embed_dim=16),
        name="custom",
        image_size=128,
    )
    model = build_model(cfg)
    path = tmp_path / "custom.pt"
    torch.save({"model": model.state_dict(), "model_config": cfg.to_dict()}, path)
    assert stored_config(path) == cfg
    loaded = load_model(path)
    assert loaded.config == cfg
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_a_missing_bundled_model_says_how_to_fix_it(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from masklet import checkpoints

    monkeypatch.setattr(checkpoints, "BUNDLED_DIR", tmp_path)
    with pytest.raises(
        checkpoints.CheckpointError, match=r"reinstall masklet or load .* load_model\(path\)"
    ):
        checkpoints.load_model("masklet-nano-synthetic")


def test_auto_prefers_a_cached_official_model_else_the_bundled_nano(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from masklet import checkpoints

    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path))
    assert checkpoints.resolve_model_name("auto") == "masklet-nano-synthetic"
    (tmp_path / checkpoints.checkpoint_info("sam2.1_hiera_tiny").filename).write_bytes(b"x")
    assert checkpoints.resolve_model_name("auto") == "sam2.1_hiera_tiny"
    assert checkpoints.resolve_model_name("sam2_hiera_large") == "sam2_hiera_large"
