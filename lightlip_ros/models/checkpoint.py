"""Loading and saving generator, SyncNet and mouth-shape reader checkpoints in every format users bring.

Recognised files:
- official Wav2Lip: {"state_dict": ..., "optimizer": ..., "global_step": ..., "global_epoch": ...}, keys
  with or without the `module.` prefix DataParallel adds;
- plain state dicts (Nota's `lrs3-wav2lip.pth` teacher and `lrs3-nota-wav2lip.pth` student);
- LightLip's own format, which records the architecture, its widths and provenance, so any student width
  loads without being told.
Files are read with `torch.load(weights_only=True)`: a checkpoint never runs code.
"""
from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import LightLipError, first_line
from .. import __version__
from ..atomic_files import atomic_write
from .generator import STUDENT, TEACHER, Wav2LipGenerator, build_generator
from .mouth_shape import MOUTH_SHAPE_NET, MouthShapeNet
from .syncnet import SyncNet

PROJECT_FORMAT = "lightlip"
FORMAT_VERSION = 1
GENERATOR = "generator"
SYNC_EXPERT = "syncnet"

# Prefixes wrappers add to every key: DataParallel/DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_LISTED = 4  # keys named per kind of mismatch in an error message


class CheckpointError(LightLipError, ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the requested network."""


def load_generator(path, map_location="cpu") -> Wav2LipGenerator:
    """Load a teacher or student generator in eval mode, detecting its architecture from the file.

    The model carries `checkpoint_info`: {"path", "format", "metadata"}.
    """
    path = Path(path)
    state, source_format, config, metadata = _unpack(_read(path, map_location), path, GENERATOR)
    if config is not None:
        candidates = [_build(path, config)]
    else:
        candidates = [build_generator({"architecture": TEACHER})]
        widths = _student_widths_from_state(state)
        if widths is not None:
            candidates.append(_build(path, {"architecture": STUDENT, "widths": widths}))
    return _load_into(candidates, state, path, source_format, metadata, map_location)


def save_generator(model: nn.Module, path, **metadata) -> Path:
    """Write a generator in LightLip's format (atomically); `metadata` holds provenance such as the
    teacher checkpoint, training step or dataset (plain str/int/float/bool/list/dict values)."""
    model = unwrap_model(model)
    if not isinstance(model, Wav2LipGenerator):
        raise TypeError(f"save_generator needs a Wav2LipGenerator, got {type(model).__name__}")
    return _write(path, GENERATOR, model, metadata)


def load_syncnet(path, map_location="cpu") -> SyncNet:
    """Load the lip-sync expert (official `lipsync_expert.pth`, a plain state dict or LightLip's format)."""
    path = Path(path)
    state, source_format, config, metadata = _unpack(_read(path, map_location), path, SYNC_EXPERT)
    if config is not None and config.get("architecture") != SyncNet.architecture:
        raise CheckpointError(f"{path}: unknown SyncNet architecture {config.get('architecture')!r}")
    try:  # files from before the width option hold Wav2Lip's full-width expert
        model = SyncNet((config or {}).get("width", 1.0))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid SyncNet config {dict(config)!r}") from error
    return _load_into([model], state, path, source_format, metadata, map_location)


def save_syncnet(model: nn.Module, path, **metadata) -> Path:
    """Write a SyncNet in LightLip's format (atomically)."""
    model = unwrap_model(model)
    if not isinstance(model, SyncNet):
        raise TypeError(f"save_syncnet needs a SyncNet, got {type(model).__name__}")
    return _write(path, SYNC_EXPERT, model, metadata)


def load_mouth_shape_net(path, map_location="cpu") -> MouthShapeNet:
    """Load the mouth-shape reader (LightLip's format only: the project trains it, `lightlip-train shapenet`)."""
    path = Path(path)
    state, source_format, config, metadata = _unpack(_read(path, map_location), path, MOUTH_SHAPE_NET)
    if source_format != PROJECT_FORMAT or config.get("architecture") != MOUTH_SHAPE_NET:
        raise CheckpointError(f"{path}: not a LightLip mouth-shape net (train one with `lightlip-train shapenet`)")
    try:
        model = MouthShapeNet(config["dimensions"], config["width"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid mouth-shape net config {dict(config)!r}") from error
    return _load_into([model], state, path, source_format, metadata, map_location)


def save_mouth_shape_net(model: nn.Module, path, **metadata) -> Path:
    """Write a mouth-shape reader in LightLip's format (atomically)."""
    model = unwrap_model(model)
    if not isinstance(model, MouthShapeNet):
        raise TypeError(f"save_mouth_shape_net needs a MouthShapeNet, got {type(model).__name__}")
    return _write(path, MOUTH_SHAPE_NET, model, metadata)


def _read(path: Path, map_location):
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated, foreign or unsafe pickles
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_load_failure(error)})") from error


def _load_failure(error: Exception) -> str:
    """The informative part of torch.load's error, whose text is mostly generic advice."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().splitlines()[0].split(". Please")[0].strip()
        if detail.startswith("Unsupported global"):
            return f"it holds objects other than tensors and plain values: {detail}"
        return f"corrupt or not a PyTorch file: {detail}"
    return first_line(error).split(". This is")[0]


def _unpack(payload, path: Path, kind: str):
    """-> (state_dict without wrapper prefixes, source format, config or None, metadata)."""
    if isinstance(payload, Mapping) and payload.get("format") == PROJECT_FORMAT:
        if payload.get("format_version", 0) > FORMAT_VERSION:
            raise CheckpointError(f"{path}: written by a newer LightLip (format version "
                                  f"{payload.get('format_version')}, this one reads {FORMAT_VERSION})")
        if payload.get("kind") != kind:
            raise CheckpointError(f"{path}: holds a {payload.get('kind')}, not a {kind}")
        metadata = dict(payload.get("metadata", {}))
        metadata["saved_by"] = payload.get("saved_by", {})
        return _strip_prefixes(payload["state_dict"]), PROJECT_FORMAT, payload["config"], metadata
    if isinstance(payload, Mapping) and isinstance(payload.get("state_dict"), Mapping):
        metadata = {key: payload[key] for key in ("global_step", "global_epoch") if key in payload}
        return _strip_prefixes(payload["state_dict"]), "wav2lip-official", None, metadata
    if isinstance(payload, Mapping) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return _strip_prefixes(payload), "state-dict", None, {}
    found = f"keys {sorted(map(str, payload))[:8]}" if isinstance(payload, Mapping) else type(payload).__name__
    raise CheckpointError(f"{path}: not a {kind} checkpoint (expected a LightLip file, an official "
                          f"{{'state_dict': ...}} file or a plain state dict; found {found})")


def _strip_prefixes(state: Mapping) -> dict:
    stripped = {}
    for key, value in state.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        stripped[key] = value
    return stripped


def _student_widths_from_state(state: Mapping):
    """Widths of a residual-free student read off the weight shapes; None if the keys do not fit one."""
    try:
        face = [state[f"face_encoder_blocks.{i}.0.conv_block.0.weight"].shape[0] for i in range(7)]
        audio = [state[f"audio_encoder.{k}.conv_block.0.weight"].shape[0] for k in range(6)]
        # Decoder block 0 is a Conv2d (out, in, k, k); the others are ConvTranspose2d (in, out, k, k).
        decoder = [state["face_decoder_blocks.0.0.conv_block.0.weight"].shape[0]]
        decoder += [state[f"face_decoder_blocks.{i}.0.conv_block.0.weight"].shape[1] for i in range(1, 7)]
        output = state["output_block.0.conv_block.0.weight"].shape[0]
    except (KeyError, AttributeError, IndexError):
        return None
    return {"face": face, "audio": audio, "decoder": decoder, "output": output}


def _build(path: Path, config: Mapping) -> Wav2LipGenerator:
    try:
        return build_generator(config)
    except (ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: invalid generator config {dict(config)!r}: {error}") from error


def _mismatches(model: nn.Module, state: Mapping) -> list:
    """Ways `state` does not fit `model`; BatchNorm's num_batches_tracked may be absent (older files)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} in file vs {tuple(expected[k].shape)}"
              for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - _LISTED} more)" if len(items) > _LISTED else ""
            problems.append((len(items), f"{len(items)} {label}: {', '.join(items[:_LISTED])}{more}"))
    return problems


def _describe(model: nn.Module) -> str:
    if isinstance(model, Wav2LipGenerator) and model.architecture == STUDENT:
        return f"student generator (widths {model.widths.to_dict()})"
    if isinstance(model, Wav2LipGenerator):
        return "wav2lip generator"
    if isinstance(model, MouthShapeNet):
        return "mouth-shape net"
    return "SyncNet_color expert"


def _load_into(candidates, state, path, source_format, metadata, map_location):
    report = []
    for model in candidates:
        problems = _mismatches(model, state)
        if not problems:
            model.load_state_dict(state, strict=False)  # fit checked above, strict would reject old BN keys
            if isinstance(map_location, (str, torch.device)):
                model.to(map_location)
            model.eval()
            model.checkpoint_info = {"path": str(path), "format": source_format, "metadata": metadata}
            return model
        report.append((sum(n for n, _ in problems), model, problems))
    _, closest, problems = min(report, key=lambda item: item[0])
    raise CheckpointError(f"{path}: {source_format} checkpoint does not match the {_describe(closest)}: "
                          + "; ".join(text for _, text in problems))


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside DataParallel/DistributedDataParallel (`module`) or torch.compile (`_orig_mod`)."""
    while True:
        inner = next((getattr(model, name) for name in ("module", "_orig_mod")
                      if isinstance(getattr(model, name, None), nn.Module)), None)
        if inner is None:
            return model
        model = inner


def weight_fingerprint(model: nn.Module) -> str:
    """sha256 of a network's parameters and buffers by name (wrappers ignored): the identity of its weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(unwrap_model(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _plain(value, where: str):
    """Metadata must survive weights_only loading: keep only plain values (paths become strings)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str):
        return str(value)  # str subclasses (e.g. torch's TorchVersion) would need unsafe unpickling
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item, where) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item, f"{where}.{key}") for key, item in value.items()}
    raise TypeError(f"checkpoint metadata {where} must be str/int/float/bool/None/list/dict, "
                    f"got {type(value).__name__}")


def _write(path, kind: str, model: nn.Module, metadata: Mapping) -> Path:
    path = Path(path)
    payload = {
        "format": PROJECT_FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": model.config,
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "metadata": _plain(dict(metadata), "metadata"),
        "saved_by": {"lightlip": __version__, "torch": str(torch.__version__),
                     "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
    }
    with atomic_write(path) as temporary:
        torch.save(payload, temporary)
    return path
