"""Preparing a run, as plain functions: what can be checked before the project gets a run row is checked
here, so that a user error (a missing backbone folder, a folder without safetensors, an invalid setting,
a device that is not there) leaves no run behind.

Torch-free at import (``device`` and ``model`` are imported inside the functions), so the CLI can call these early.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.training.config import TrainConfig


class RunFailure(Exception):
    """Stops a run with a message for the user and a hint of what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class StartCheck:
    """What a run can start with: its device type and its backbone's folder."""

    device_type: str
    backbone_path: str


def check_start(config: TrainConfig, backbone: bool = True) -> StartCheck:
    """Validate ``config`` and find its device and (``backbone``) its backbone folder, or raise RunFailure.
    A resumed run checks its backbone later, with its stored config ("" here)."""
    from workbench.training.device import resolve_device
    from workbench.training.model import BackboneError, resolve_backbone_path

    try:
        config.validate()
    except ValueError as exc:
        raise RunFailure(f"invalid setting: {exc}", "correct the setting and start again") from None
    try:
        device_type = resolve_device(config)
    except ValueError as exc:
        raise RunFailure(str(exc), "set device to 'auto' or 'cpu'") from None
    if not backbone:
        return StartCheck(device_type, "")
    try:
        path = resolve_backbone_path(config.backbone)
    except BackboneError as exc:
        raise RunFailure(str(exc), "choose another backbone (a local Hugging Face model folder) or 'minilm'") from None
    return StartCheck(device_type, path)
