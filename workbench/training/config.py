"""Training configuration shared by the GUI, the CLI and checkpoints.

One dataclass with a one-line help per field (TRL's ``RewardConfig`` style), so the three front ends
cannot drift apart: the CLI builds its flags from the fields, the GUI reads the help texts, and a
checkpoint stores ``to_dict()`` and reads it back with ``from_dict()``, which ignores keys written by
a newer version instead of failing on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from workbench.core.records import MARGIN_SCALES

Mode = Literal["head", "finetune"]
HeadKind = Literal["linear", "mlp"]
MarginScale = Literal["small", "large"]
Device = Literal["auto", "cpu", "cuda", "mps"]
#: ``core.store.LABEL_SOURCES`` and ``TIE_RULES`` (a test keeps them equal)
LabelSource = Literal["adjudicated", "majority", "latest", "posterior"]
TieRule = Literal["skip", "half"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

#: Llama 2's margins per strength level (Touvron et al. 2023, table 28): 4 = significantly better,
#: 3 = better, 2 = slightly better, 1 = negligibly better / unsure.

# Learning rates when the user leaves ``learning_rate`` unset. A head on frozen embeddings is a tiny
# convex-ish problem, but the trainer takes ~16 large steps an epoch, so it needs a large step: on HH
# pairs (20 epochs, three prompt splits) 1e-3 reached 0.548, 1e-2 0.550-0.592, 3e-2 0.558-0.598.
# Full fine-tuning of a small encoder sits at the top of BERT's usual 2e-5..5e-5 range because 2e-5 for one epoch
# barely moves the loss (0.693 -> 0.65) on our data sizes. LoRA adapters need a larger step (the usual
# 1e-4..3e-4 for LoRA; TRL's RewardConfig default is 1e-4).
DEFAULT_LR = {"head": 3e-2, "finetune": 5e-5, "lora": 2e-4}
# A head pass over cached embeddings costs milliseconds, so it can afford many epochs; fine-tuning a
# backbone on one core costs about a second per step, so it gets two.
DEFAULT_EPOCHS = {"head": 20, "finetune": 2}
# Out-of-fold scores: K heads on the cached embeddings cost seconds, so every head run gets them; in
# fine-tune mode K fine-tunes are asked for (see the help of ``folds``), else head-mode folds stand in.
DEFAULT_FOLDS = {"head": 5, "finetune": 0}

# CLI aliases beyond the flag derived from the field name.
_ALIASES = {"learning_rate": ["--lr"]}


def margin_for_strength(strength: int | None, scale: str = "small") -> float:
    """The margin m in -log σ(r_c - r_r - m) for a judgment's strength (None, e.g. imported: 0)."""
    if scale not in MARGIN_SCALES:
        raise ValueError(f"margin_scale must be one of {sorted(MARGIN_SCALES)}, got {scale!r}")
    if strength is None:
        return 0.0
    if isinstance(strength, bool) or not isinstance(strength, int) or strength not in MARGIN_SCALES[scale]:
        raise ValueError(f"strength must be an integer from 1 to 4 or None, got {strength!r}")
    return MARGIN_SCALES[scale][strength]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    """Everything that defines a reward-model training run."""

    mode: Mode = field(
        default="head",
        metadata=_help(
            "head: train a small head on frozen, cached embeddings (seconds); finetune: train the backbone too"
        ),
    )
    backbone: str = field(
        default="minilm",
        metadata=_help("'minilm' for the bundled all-MiniLM-L6-v2, or a local Hugging Face model folder"),
    )
    lora: bool = field(
        default=False, metadata=_help("fine-tune LoRA adapters instead of all backbone weights (mode finetune only)")
    )
    head: HeadKind = field(
        default="linear",
        metadata=_help("linear: a linear map on the pooled features; mlp: one hidden layer (encoders only)"),
    )
    learning_rate: float | None = field(
        default=None, metadata=_help("AdamW learning rate; unset: 3e-2 for head, 5e-5 for finetune, 2e-4 for LoRA")
    )
    epochs: int | None = field(
        default=None, metadata=_help("passes over the training pairs; unset: 20 for head, 2 for finetune")
    )
    batch_size: int = field(
        default=8, metadata=_help("pairs per step (chosen and rejected go through the model together, so 2x texts)")
    )
    max_length: int = field(
        default=256, metadata=_help("tokens per text; longer texts lose the start of the prompt first")
    )
    pass_tokens: int = field(
        default=2048,
        metadata=_help(
            "most padded tokens (texts x width) in one forward and backward pass; a batch that needs more is "
            "split into micro-batches: the same gradient, less memory; 0 never splits"
        ),
    )
    labels: LabelSource = field(
        default="adjudicated",
        metadata=_help(
            "which label each comparison trains on: adjudicated (an adjudication, else the majority), majority "
            "(annotators' votes only), latest (the most recent label), posterior (P(a better) from the "
            "annotator-reliability model, trained as a soft target)"
        ),
    )
    ties: TieRule = field(
        default="skip",
        metadata=_help("skip: ties are not trained on; half: a tie trains as P(either better) = 1/2"),
    )
    margin_from_strength: bool = field(
        default=False,
        metadata=_help("subtract a margin from the reward gap according to the judgment's strength (Llama 2)"),
    )
    margin_scale: MarginScale = field(
        default="small", metadata=_help("Llama 2 margin scale: small (0..1) or large (0..3)")
    )
    center_rewards_coefficient: float = field(
        default=0.0, metadata=_help("weight of the reward-centring penalty mean((r_c + r_r)^2); 0 turns it off")
    )
    weight_decay: float = field(default=0.01, metadata=_help("AdamW decoupled weight decay"))
    dropout: bool = field(
        default=False,
        metadata=_help(
            "keep the backbone's dropout while training (off, as in TRL's RewardTrainer: it adds noise to r_c - r_r)"
        ),
    )
    val_fraction: float = field(
        default=0.2, metadata=_help("fraction of prompts held out for validation (split by prompt, never by pair)")
    )
    folds: int | None = field(
        default=None,
        metadata=_help(
            "K for out-of-fold margins (each labelled pair scored by a model that never saw its prompt; split by "
            "prompt), computed when the run finishes. Head mode: K heads on the cached embeddings, seconds in all "
            "(unset: 5; 0: none). Finetune mode: K > 0 costs K extra fine-tunes, each on (K-1)/K of the pairs with "
            "the run's settings (about K times the run's training time); unset or 0: 5 heads on the backbone's "
            "cached embeddings instead (source 'head-folds', seconds plus embedding the texts once)"
        ),
    )
    rescore_train: bool = field(
        default=False,
        metadata=_help(
            "fine-tune: at an epoch's end score the training pairs in a pass of their own (the final model's "
            "scores; costs about a third of an epoch) instead of keeping the in-sample margins of that epoch's "
            "training passes (validation and unlabelled pairs are always scored afresh)"
        ),
    )
    seed: int = field(default=0, metadata=_help("seed for the split, the batch order and the head's initialisation"))
    eval_every: int = field(
        default=0, metadata=_help("evaluate every this many steps; 0 evaluates at the end of each epoch")
    )
    threads: int = field(
        default=0,
        metadata=_help(
            "torch CPU threads; 0 (auto): the fastest of 1, half and all physical cores, measured on a few steps "
            "on the first run on a machine and remembered"
        ),
    )
    device: Device = field(default="auto", metadata=_help("auto picks cuda, then mps, then cpu"))
    precision: Precision = field(
        default="auto",
        metadata=_help(
            "fine-tune arithmetic: auto is bf16 autocast on a CUDA GPU that has it (fp16 with a gradient scaler "
            "otherwise) and fp32 elsewhere; fp32, bf16 (CUDA or CPU) and fp16 (CUDA) force one; weights stay fp32"
        ),
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=_help(
            "fine-tune: recompute the backbone's activations in the backward pass instead of keeping them: much "
            "less memory for large models, about a third more time"
        ),
    )

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise ValueError naming the first bad field; GUI and CLI show the message as is."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), hints[f.name])
        if self.learning_rate is not None and not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.folds is not None and (self.folds < 0 or self.folds == 1):
            raise ValueError(f"folds must be 0 (none) or at least 2, got {self.folds!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length!r}")
        for name in ("center_rewards_coefficient", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be zero or a positive number, got {value!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be at least 0 and below 1, got {self.val_fraction!r}")
        for name in ("eval_every", "threads", "pass_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be zero or positive, got {getattr(self, name)!r}")
        if not self.backbone.strip():
            raise ValueError("backbone must be 'minilm' or the path of a local Hugging Face model folder")
        if self.lora and self.mode != "finetune":
            raise ValueError("lora applies only to mode 'finetune'; set mode to 'finetune' or turn lora off")

    # ----------------------------------------------------------------- resolution
    def resolved_lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        if self.mode == "finetune" and self.lora:
            return DEFAULT_LR["lora"]
        return DEFAULT_LR[self.mode]

    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS[self.mode]

    def resolved_folds(self) -> int:
        """K of the out-of-fold scores: the setting, or 5 in head mode and 0 (none) in fine-tune mode."""
        return self.folds if self.folds is not None else DEFAULT_FOLDS[self.mode]

    def margin(self, strength: int | None) -> float:
        """The margin for one judgment under this config (0 unless margin_from_strength)."""
        return margin_for_strength(strength, self.margin_scale) if self.margin_from_strength else 0.0

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a stored dict; unknown keys (from a newer version) are ignored, bad values raise."""
        if not isinstance(data, dict):
            raise ValueError(f"a training configuration must be a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def base_type(hint: Any) -> Any:
    """The type a field holds when set: ``int`` for ``int | None``; a ``Literal`` stays as it is."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal or not args:
        return hint
    return next((a for a in args if a is not type(None)), hint)


def _check_type(name: str, value: Any, hint: Any) -> None:
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        return
    if value is None:
        if type(None) in args:
            return
        raise ValueError(f"{name} must be set, got None")
    base = base_type(hint)
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, base)
    if not ok:
        raise ValueError(f"{name} must be of type {base.__name__}, got {value!r}")


# --------------------------------------------------------------------- CLI
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add one flag per TrainConfig field. Unset flags stay None so ``from_args`` can overlay a base."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        hint = hints[f.name]
        flags = [_flag(f.name), *_ALIASES.get(f.name, [])]
        help_text = f"{f.metadata['help']} (default: {f.default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        args = typing.get_args(hint)
        if typing.get_origin(hint) is Literal:
            kwargs.update(choices=list(args), type=str)
        elif hint is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        else:
            kwargs.update(type=base_type(hint), metavar=f.name.upper())
        parser.add_argument(*flags, **kwargs)


def from_args(namespace: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The config that ``base`` (or the defaults) becomes with the flags given on the command line."""
    values = (base or TrainConfig()).to_dict()
    for f in dataclasses.fields(TrainConfig):
        value = getattr(namespace, f.name, None)
        if value is not None:
            values[f.name] = value
    return TrainConfig.from_dict(values)
