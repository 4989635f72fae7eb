"""Which torch device a run uses: the one torch question a configuration asks, kept out of ``config.py``
(which the GUI imports, and which therefore stays free of torch).

Imported by run preparation (``prepare.check_start``) in the process that trains, never by the UI.
"""

from __future__ import annotations

import torch

from workbench.training.config import TrainConfig


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
