"""Load weights into our models from our checkpoints, torchvision ResNet files or DeepEthogram checkpoints.

``load_weights(model, path, source="auto")`` reads the file, maps parameter names to ours, checks every shape,
and either places every tensor the model needs or raises :class:`WeightsError` naming the first key that does
not fit. Sources:

- ``"ours"``: a deg-train checkpoint (dict with ``schema_version``, ``stage``, ``state_dict``) or a plain
  state_dict with our names. A flow-stage checkpoint loads into a ``TwoStream``'s ``flow_generator``.
- ``"torchvision"``: the state_dict of ``torchvision.models.resnet18/34/50`` (ImageNet). Loads into a 2D
  ``ResNet`` backbone or into both streams of a 2D ``TwoStream``; ``fc`` is dropped. A flow stream's first
  convolution (2(T-1) input channels) is built from the RGB one by averaging over the 3 input channels and
  repeating it 2(T-1) times (cross-modality initialisation of TSN, Wang et al. 2016, as DeepEthogram does).
  Layers torchvision does not have (heads, ResNet50's ``compression_fc``, the flow generator) keep their init.
- ``"deepethogram"``: a DeepEthogram ``checkpoint.pt`` (a dict with ``state_dict`` plus ``epoch``,
  ``optimizer``, ``hyperparameters``; or a bare state_dict; keys may start with ``module.`` or ``model.``,
  which are stripped, as DeepEthogram does). A flow-generator checkpoint (``conv1.0.weight``, ...) loads into
  a flow generator or a ``TwoStream``'s flow generator; a feature-extractor checkpoint
  (``spatial_classifier.0.*``, ``spatial_classifier.1.*``, ``flow_classifier.*``, ``flow_generator.*``,
  ``fusion.fc.*``) loads into a ``TwoStream`` (or, its flow generator part, into a flow generator). Lightning
  ``.ckpt`` files (``lightning_checkpoints/``) read the same way: their OmegaConf configs are read with stand-ins
  (:mod:`deg_train.models.safe_load`), never by running OmegaConf. A per-stream file (DeepEthogram's ``spatial/``
  or ``flow/checkpoint.pt``: keys ``0.*`` for the CNN, ``1.*`` for its last layer) loads into that stream of a
  ``TwoStream`` (which stream: from the first convolution's input channels, 3 or 2(T-1)); the rest of the model
  keeps its weights. A TGMJ sequence checkpoint (``tgm_layers.*``, ``h.*``, ``classify1.*``...) loads into
  :class:`~deg_train.models.sequence.tgmj.DeepEthogramTGMJ`: its ``delta`` (no effect in its forward pass) and
  ``h2`` (built but never used by its forward pass) are skipped and listed in the report.

Classification heads whose number of behaviours differs from the file's (e.g. a Kinetics-pretrained model's
700 classes) are skipped and listed in the report when ``allow_head_mismatch`` (the default): they are
re-initialised for the new behaviours, like DeepEthogram does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from camera_adapters.errors import UserFacingError
from deg_train.models.feature.resnet import ResNet
from deg_train.models.feature.resnet3d import ResNet3d
from deg_train.models.feature.two_stream import TwoStream
from deg_train.models.flow.base import FlowGenerator
from deg_train.models.safe_load import load_untrusted
from deg_train.models.sequence.base import SequenceModel
from deg_train.models.sequence.tgmj import DeepEthogramTGMJ

SOURCES = ("auto", "ours", "torchvision", "deepethogram")
HEAD_PREFIXES = (
    "spatial_head.",
    "flow_head.",
    "spatial_bn.",
    "flow_bn.",
    "fusion_head.",
    "classify1.",
    "classify2.",
    "classifier.",
)

# Never in foreign files: BatchNorm counters and our normalisation buffers (set from the project's statistics).
KEEP_INIT_SUFFIXES = ("num_batches_tracked", "input_mean", "input_std")

StateDict = dict[str, torch.Tensor]


class WeightsError(UserFacingError, ValueError):
    """A weights file that cannot be read or does not fit the model; the message names the key and shapes."""


@dataclass
class LoadReport:
    """What :func:`load_weights` did.

    Attributes:
        source: the source used ("ours", "torchvision", "deepethogram").
        loaded: model keys (relative to ``model``) filled from the file.
        kept_init: model keys the file has no value for, left at their initialisation (heads, new layers).
        skipped: ``"key: reason"`` for file tensors not loaded (mismatched heads, torchvision's fc).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    kept_init: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _read(path: Path) -> Any:
    """The file's content, loaded without running code from it (:mod:`deg_train.models.safe_load`)."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    return load_untrusted(path, map_location="cpu", error=WeightsError)


def _strip_prefixes(state: StateDict) -> StateDict:
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _extract_state_dict(raw: Any, path: Path) -> StateDict:
    if isinstance(raw, nn.Module):
        raw = raw.state_dict()
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{path}: no state_dict found (expected a dict of tensors or a dict with 'state_dict')")
    return _strip_prefixes({str(k): v for k, v in raw.items() if "criterion" not in str(k)})


def _detect(raw: Any, state: StateDict) -> str:
    if isinstance(raw, dict) and "schema_version" in raw and "stage" in raw:
        return "ours"
    keys = set(state)
    if any(k.startswith(("spatial_classifier.", "flow_classifier.")) for k in keys):
        return "deepethogram"
    if _is_deg_stream(state) or _is_deg_tgmj(state):
        return "deepethogram"
    if "conv1.0.weight" in keys and any(k.startswith("predict_flow") for k in keys):
        return "deepethogram"
    if "fc.weight" in keys and "layer1.0.conv1.weight" in keys and not any("compression_fc" in k for k in keys):
        return "torchvision"
    return "ours"


def _subset(state: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _prefixed(state: StateDict, prefix: str) -> StateDict:
    return {prefix + k: v for k, v in state.items()}


def _adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """(O, 3, kh, kw) RGB kernel -> (O, in_channels, kh, kw): mean over RGB, repeated (TSN cross-modality)."""
    if weight.shape[1] == in_channels:
        return weight
    return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, *([1] * (weight.dim() - 2)))


def _map_ours(raw: Any, state: StateDict, model: nn.Module) -> tuple[StateDict, set[str]]:
    stage = raw.get("stage") if isinstance(raw, dict) else None
    if isinstance(model, TwoStream) and (stage == "flow" or not any(k.startswith("flow_generator.") for k in state)):
        if stage == "flow" or "predict_flow2.weight" in state or "predict_flow2.0.weight" in state:
            return _prefixed(state, "flow_generator."), _all_except(model, "flow_generator.")
    if isinstance(model, FlowGenerator) and any(k.startswith("flow_generator.") for k in state):
        return _subset(state, "flow_generator."), set()
    return state, set()


def _all_except(model: nn.Module, prefix: str) -> set[str]:
    return {k for k in model.state_dict() if not k.startswith(prefix)}


def _map_torchvision(state: StateDict, model: nn.Module, report: LoadReport) -> tuple[StateDict, set[str]]:
    body = {k: v for k, v in state.items() if not k.startswith("fc.")}
    report.skipped += [f"{k}: torchvision's ImageNet classifier" for k in state if k.startswith("fc.")]
    if isinstance(model, ResNet):
        body["conv1.weight"] = _adapt_first_conv(body["conv1.weight"], model.in_channels)
        return body, {k for k in model.state_dict() if k.startswith("compression_fc.")}
    if isinstance(model, TwoStream) and not model.is_3d:
        out = _prefixed(body, "spatial_encoder.")
        flow = dict(body)
        flow["conv1.weight"] = _adapt_first_conv(flow["conv1.weight"], model.flow_encoder.in_channels)
        out.update(_prefixed(flow, "flow_encoder."))
        keep = {k for k in model.state_dict() if k.startswith(("flow_generator.", *HEAD_PREFIXES))}
        keep |= {k for k in model.state_dict() if ".compression_fc." in k}
        return out, keep
    raise WeightsError(
        f"torchvision ResNet weights load into a 2D ResNet backbone or a 2D TwoStream, not {type(model).__name__}"
    )


_DEG_RENAMES = (
    ("spatial_classifier.0.", "spatial_encoder."),
    ("spatial_classifier.1.", "spatial_head."),
    ("flow_classifier.0.", "flow_encoder."),
    ("flow_classifier.1.", "flow_head."),
    ("spatial_classifier.2.", "spatial_bn."),  # final_bn: the BatchNorm1d after the stream's last layer
    ("flow_classifier.2.", "flow_bn."),
    ("fusion.fc.", "fusion_head."),
    ("flow_generator.", "flow_generator."),
)


def _rename_deg(key: str) -> str | None:
    for old, new in _DEG_RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def _is_deg_stream(state: StateDict) -> bool:
    """A DeepEthogram per-stream file: ``Sequential(cnn, Linear[, BatchNorm1d])`` -> keys ``0.*`` and ``1.*``."""
    return "0.conv1.weight" in state and "1.weight" in state and all(k.split(".", 1)[0] in "012" for k in state)


def _is_deg_tgmj(state: StateDict) -> bool:
    return any(k.startswith("tgm_layers.") for k in state) and any(k.startswith("classify1") for k in state)


def _map_deg_stream(state: StateDict, model: TwoStream) -> tuple[StateDict, set[str]]:
    channels = int(state["0.conv1.weight"].shape[1])
    stream = "spatial" if channels == 3 else "flow"
    has_bn = "2.weight" in state  # final_bn: a BatchNorm1d after the stream's last layer
    if has_bn != bool(getattr(model, "final_bn", False)):
        raise WeightsError(
            f"this per-stream file has final_bn={has_bn} (a BatchNorm after the last layer) but the model is built "
            f"with final_bn={not has_bn}; build it with final_bn={has_bn}"
        )
    out = _prefixed(_subset(state, "0."), f"{stream}_encoder.")
    out.update(_prefixed(_subset(state, "1."), f"{stream}_head."))
    out.update(_prefixed(_subset(state, "2."), f"{stream}_bn."))
    mine = (f"{stream}_encoder.", f"{stream}_head.", f"{stream}_bn.")
    keep = {k for k in model.state_dict() if not k.startswith(mine)}
    return out, keep


def _map_deg_tgmj(state: StateDict, model: DeepEthogramTGMJ, report: LoadReport) -> tuple[StateDict, set[str]]:
    """DeepEthogram's TGMJ names (1x1 Conv1d heads, 5-D ``cls_attn``) -> :class:`DeepEthogramTGMJ`'s."""
    out: StateDict = {}
    for key, value in state.items():
        if key.endswith(".delta") or key.startswith("h2."):
            report.skipped.append(f"{key}: unused by DeepEthogram's TGMJ forward pass")
            continue
        if key == "weights":  # use_fe_logits mixing weights; DeepEthogram builds TGMJ with use_fe_logits=False
            report.skipped.append(f"{key}: feature-extractor logit mixing, off in DeepEthogram's sequence models")
            continue
        new = key
        for head in ("1", "2"):
            if key.startswith(f"classify{head}.0."):
                new = f"classify{head}." + key[len(f"classify{head}.0.") :]
            elif key.startswith(f"classify{head}.1."):
                new = f"bn{head}." + key[len(f"classify{head}.1.") :]
        if key.endswith("cls_attn"):
            value = value.reshape(value.shape[1], value.shape[2])  # (1, c_out, c_in, 1, 1) -> (c_out, c_in)
        elif value.dim() == 3 and value.shape[-1] == 1:  # Conv1d kernel size 1 -> Linear
            value = value[..., 0]
        out[new] = value
    return out, set()


def _map_deepethogram(state: StateDict, model: nn.Module, report: LoadReport) -> tuple[StateDict, set[str]]:
    if isinstance(model, DeepEthogramTGMJ):
        if not _is_deg_tgmj(state):
            raise WeightsError("not a DeepEthogram TGMJ checkpoint (no tgm_layers / classify1 weights)")
        return _map_deg_tgmj(state, model, report)
    if isinstance(model, TwoStream) and _is_deg_stream(state):
        return _map_deg_stream(state, model)
    is_full = any(k.startswith(("spatial_classifier.", "flow_classifier.")) for k in state)
    if isinstance(model, FlowGenerator):
        return (_subset(state, "flow_generator.") if is_full else state), set()
    if isinstance(model, TwoStream):
        if not is_full:  # a flow-generator checkpoint
            return _prefixed(state, "flow_generator."), _all_except(model, "flow_generator.")
        out: StateDict = {}
        for key, value in state.items():
            new = _rename_deg(key)
            if new is None:
                raise WeightsError(
                    f"DeepEthogram key {key!r} has no counterpart here (supported: spatial_classifier.0/1/2, "
                    "flow_classifier.0/1/2, flow_generator, fusion.fc)"
                )
            out[new] = value
        return out, set()
    if isinstance(model, (ResNet, ResNet3d)) and is_full:
        return _subset(state, "spatial_classifier.0."), set()
    if isinstance(model, SequenceModel):
        raise WeightsError(
            "DeepEthogram sequence checkpoints load into its own model, 'tgmj' (centred, offline only; "
            "deg-train import-deepethogram makes a run of it); train our causal sequence model on features instead"
        )
    return state, set()


def _assign(
    model: nn.Module,
    mapped: StateDict,
    may_keep_init: set[str],
    report: LoadReport,
    path: Path,
    allow_head_mismatch: bool,
) -> None:
    own = model.state_dict()
    for key, value in mapped.items():
        if key not in own:
            raise WeightsError(
                f"{path}: parameter {key!r} (shape {tuple(value.shape)}) from the {report.source} file has no "
                f"place in {type(model).__name__}; is this the right file and architecture?"
            )
        if own[key].shape != value.shape:
            if allow_head_mismatch and key.startswith(HEAD_PREFIXES):
                report.skipped.append(
                    f"{key}: head shape {tuple(value.shape)} in file vs {tuple(own[key].shape)} here (re-initialised)"
                )
                continue
            raise WeightsError(
                f"{path}: shape mismatch at {key!r}: file {tuple(value.shape)}, model {tuple(own[key].shape)} "
                "(different architecture, width, frames per window or number of behaviours?)"
            )
    skipped_keys = {s.split(":", 1)[0] for s in report.skipped}
    for key in own:
        if key in mapped and key not in skipped_keys:
            continue
        if key in may_keep_init or key in skipped_keys or key.endswith(KEEP_INIT_SUFFIXES):
            report.kept_init.append(key)
            continue
        raise WeightsError(
            f"{path}: the {report.source} file has no value for {key!r} (shape {tuple(own[key].shape)}) "
            f"of {type(model).__name__}; is this the right file and architecture?"
        )
    merged = dict(own)
    for key, value in mapped.items():
        if key not in skipped_keys:
            merged[key] = value.to(own[key].dtype)
            report.loaded.append(key)
    model.load_state_dict(merged, strict=True)


def load_weights(
    model: nn.Module,
    path: str | os.PathLike,
    source: str = "auto",
    *,
    into: str | None = None,
    allow_head_mismatch: bool = True,
) -> LoadReport:
    """Load a weights file into ``model`` (in place), mapping names and checking every shape.

    Args:
        model: one of our models (flow generator, backbone, TwoStream, sequence model).
        path: the weights file.
        source: "auto" (detect from the file), "ours", "torchvision" or "deepethogram".
        into: load into this submodule of ``model`` instead (e.g. "flow_generator", "spatial_encoder").
        allow_head_mismatch: skip classification heads whose shape differs (number of behaviours) instead of
            failing; they keep their initialisation and are listed in ``report.skipped``.

    Returns:
        A :class:`LoadReport`.

    Raises:
        WeightsError: unreadable file, unknown source, or a key/shape that does not fit (named in the message).
    """
    if source not in SOURCES:
        raise WeightsError(f"unknown weights source {source!r}; known: {', '.join(SOURCES)}")
    path = Path(path)
    target = model.get_submodule(into) if into else model
    raw = _read(path)
    state = _extract_state_dict(raw, path)
    if source == "auto":
        source = _detect(raw, state)
    report = LoadReport(source=source)
    mappers: dict[str, Callable[[], tuple[StateDict, set[str]]]] = {
        "ours": lambda: _map_ours(raw, state, target),
        "torchvision": lambda: _map_torchvision(state, target, report),
        "deepethogram": lambda: _map_deepethogram(state, target, report),
    }
    try:
        mapped, may_keep_init = mappers[source]()
    except KeyError as err:
        raise WeightsError(f"{path}: expected key {err} in a {source} file") from None
    _assign(target, mapped, may_keep_init, report, path, allow_head_mismatch)
    return report
