"""Which torch device a run uses: the one torch question a configuration asks, kept out of ``config.py``
(which the GUI imports, and which therefore stays free of torch).

Imported by run preparation (``prepare.check_start``) in the process that trains, never by the UI.
"""

from __future__ import annotations

import torch

from workbench.training.config import TrainConfig


def autocast_dtype(precision: str, device_type: str, *, bf16_supported: bool | None = None) -> torch.dtype | None:
    """The autocast dtype of a fine-tune's forward passes, or None for plain fp32.

    auto: bf16 on a CUDA GPU that supports it (no loss scaling needed), fp16 on an older one (the trainer adds a
    gradient scaler), fp32 on the CPU and MPS, where fp32 is what the kernels are fastest and exact at. bf16 may
    be forced on the CPU too (autocast exists there: the tests run the GPU's code path with it)."""
    if precision in ("auto", "fp32") and device_type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        if device_type != "cuda":
            raise ValueError(f"precision 'fp16' needs a CUDA GPU (this run is on {device_type}); use 'bf16' or 'fp32'")
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16_supported else torch.float16


def configure(device_type: str) -> None:
    """Per-process settings of a device: TF32 matrix multiplies on CUDA (Ampere and later; fp32 storage, 10-bit
    mantissa products, what TRL's ``tf32=True`` sets)."""
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def resolve_device(config: TrainConfig) -> str:
    """The torch device name to use; an explicit device that is missing is a user error, not a fallback."""
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if config.device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if config.device == "cuda" and not cuda:
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use device 'auto' or 'cpu'")
    if config.device == "mps" and not mps:
        raise ValueError("device 'mps' was asked for but Apple MPS is not available; use device 'auto' or 'cpu'")
    return config.device
