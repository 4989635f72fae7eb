"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else.

Layout, in the project's checkpoint folder (``Project.checkpoint_dir(run_id)``)::

    run-7/
      latest.json                {"checkpoint": "step-000120", "step": 120}
      step-000120/
        model.safetensors        the trainable parameters by name (head mode: the head only;
                                 LoRA: the adapters and the head; full fine-tuning: everything trained)
        optimizer.safetensors    AdamW's per-parameter tensors, "state.<index>.<name>" (exp_avg, ...)
        state.json               step, epoch, position in the epoch, timers, the config, the data
                                 snapshot, AdamW's param_groups and the torch RNG states (base64)

A checkpoint is written into a hidden temporary folder, fsynced, renamed into place, and only then
does ``latest.json`` (replaced atomically) point at it; older checkpoints are removed afterwards. A
process killed at any moment leaves either the previous checkpoint or the new one, never half of one.
Loading never unpickles anything: ``safetensors.torch.load_file`` and ``json.loads`` only.

Frozen weights are not stored: they are rebuilt from the backbone folder named in the config
(:func:`load_trained_model`), so a head-mode checkpoint is a few kilobytes.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

FORMAT = 1
LATEST = "latest.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not fit the model it is loaded into; the message says what to do."""


@dataclass
class Checkpoint:
    path: Path
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


# --------------------------------------------------------------------- model and optimizer state
def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters being trained, by name, as contiguous CPU tensors (ready for safetensors)."""
    return {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved parameters into ``model``; every trainable parameter must be present, nothing extra."""
    params = dict(model.named_parameters())
    wanted = {n for n, p in params.items() if p.requires_grad}
    missing, unexpected = sorted(wanted - tensors.keys()), sorted(tensors.keys() - params.keys())
    if missing or unexpected:
        raise CheckpointError(
            f"the checkpoint does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "it was written for another backbone or mode: start a new run"
        )
    with torch.no_grad():
        for name, value in tensors.items():
            target = params[name]
            if target.shape != value.shape:
                raise CheckpointError(
                    f"parameter {name} has shape {tuple(value.shape)} in the checkpoint but "
                    f"{tuple(target.shape)} in the model: start a new run"
                )
            target.copy_(value.to(target.device, target.dtype))


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors for safetensors, JSON-able rest) of ``optimizer.state_dict()``."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The ``state_dict`` that :func:`flatten_optimizer` split up, ready for ``load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def rng_state() -> dict[str, Any]:
    """torch's CPU (and CUDA) generator states, base64 in JSON. The trainer's other randomness (split,
    batch order) is derived from the seed and the epoch, so it needs no state."""
    out: dict[str, Any] = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode("ascii") for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    def tensor(b64: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(b64)), dtype=torch.uint8)

    torch.set_rng_state(tensor(state["torch"]))
    if state.get("cuda") and torch.cuda.is_available():
        states = [tensor(s) for s in state["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# --------------------------------------------------------------------- files
def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save(
    run_dir: str | Path,
    step: int,
    model_tensors: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    """Write checkpoint ``step-<step>`` atomically, point ``latest.json`` at it, drop older ones."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    final = run_dir / name
    tmp = run_dir / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    opt_tensors, opt_meta = flatten_optimizer(optimizer)
    save_file(model_tensors, str(tmp / MODEL_FILE), metadata={"format": str(FORMAT)})
    save_file(opt_tensors, str(tmp / OPTIMIZER_FILE), metadata={"format": str(FORMAT)})
    full_state = {"format": FORMAT, **state, "step": int(step), "optimizer": opt_meta, "rng": rng_state()}
    (tmp / STATE_FILE).write_text(json.dumps(full_state), encoding="utf-8")
    for f in (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE):
        _fsync_file(tmp / f)
    if final.exists():  # the same step saved again (e.g. pause, then cancel): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(run_dir)
    _write_json(run_dir / LATEST, {"checkpoint": name, "step": int(step)})
    _fsync_dir(run_dir)
    for old in run_dir.iterdir():
        if old.is_dir() and old.name != name and (old.name.startswith("step-") or old.name.endswith(".tmp")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: str | Path) -> Path | None:
    """The folder of the newest complete checkpoint, or None."""
    run_dir = Path(run_dir)
    try:
        pointer = json.loads((run_dir / LATEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    path = run_dir / str(pointer.get("checkpoint", ""))
    if not all((path / f).is_file() for f in (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE)):
        return None
    return path


def load(path: str | Path, map_location: str = "cpu") -> Checkpoint:
    path = Path(path)
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        model = load_file(str(path / MODEL_FILE), device=map_location)
        opt_tensors = load_file(str(path / OPTIMIZER_FILE), device=map_location)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the checkpoint in {path} ({exc}); start a new run") from exc
    if state.get("format") != FORMAT:
        raise CheckpointError(
            f"the checkpoint in {path} has format {state.get('format')!r}, this version reads {FORMAT}; start a new run"
        )
    return Checkpoint(path, model, unflatten_optimizer(opt_tensors, state["optimizer"]), state)


# --------------------------------------------------------------------- using a trained run
def load_trained_model(run_dir: str | Path, device: str = "cpu") -> tuple[Any, Any, Any]:
    """(RewardModel, tokenizer, TrainConfig) of a run's latest checkpoint, in eval mode.

    For ``export-model`` and ``score``: the backbone is loaded from the folder the config names, LoRA
    adapters are added when the run used them, and the trained parameters are copied in.
    """
    from workbench.training.config import TrainConfig
    from workbench.training.model import build_model

    path = latest(run_dir)
    if path is None:
        raise CheckpointError(f"{run_dir} holds no checkpoint; train (or resume) the run first")
    ckpt = load(path)
    config = TrainConfig.from_dict(ckpt.state["config"])
    model, tokenizer = build_model(config)
    load_trainable_state(model, ckpt.model)
    model.to(device).eval()
    return model, tokenizer, config
