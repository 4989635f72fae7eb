"""The training configuration form: one editor per ``TrainConfig`` field, built from the dataclass.

It owns the editors, their labels, ranges and the basic / advanced split; each field's help is its
tooltip, ``Literal`` fields are combo boxes, booleans check boxes, numbers spin boxes (the field types
read through the config's own ``base_type``). ``config()`` builds and validates the dataclass; the
"auto" texts show the config's own ``resolved_lr()`` / ``resolved_epochs()``. Imports no torch.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.training.config import TrainConfig, base_type
from workbench.ui import settings

MINILM = "minilm"
BASIC_FIELDS = ("mode", "backbone", "head", "lora", "learning_rate", "epochs", "batch_size", "max_length", "labels")
LABELS = {
    "mode": "Mode",
    "backbone": "Backbone",
    "lora": "LoRA adapters",
    "head": "Head",
    "learning_rate": "Learning rate",
    "epochs": "Epochs",
    "batch_size": "Batch size",
    "max_length": "Max. tokens",
    "pass_tokens": "Tokens per pass",
    "labels": "Labels",
    "ties": "Ties",
    "margin_from_strength": "Margin from strength",
    "margin_scale": "Margin scale",
    "center_rewards_coefficient": "Reward centring",
    "weight_decay": "Weight decay",
    "val_fraction": "Validation share",
    "folds": "Out-of-fold folds",
    "seed": "Seed",
    "eval_every": "Evaluate every",
    "threads": "CPU threads",
    "rescore_train": "Re-score training pairs",
    "device": "Device",
    "precision": "Precision",
    "gradient_checkpointing": "Gradient checkpointing",
}
CHOICE_LABELS = {
    "mode": {"head": "Head on frozen embeddings (fast)", "finetune": "Fine-tune the backbone (slow)"},
    "head": {"linear": "Linear", "mlp": "MLP (one hidden layer)"},
    "margin_scale": {"small": "Small (0 to 1)", "large": "Large (0 to 3)"},
    "labels": {
        "adjudicated": "Adjudicated, else majority",
        "majority": "Majority of annotators",
        "latest": "Latest label",
        "posterior": "Posterior (annotator reliability)",
    },
    "ties": {"skip": "Not trained on", "half": "Trained as 1/2"},
    "device": {"auto": "Automatic", "cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple MPS"},
    "precision": {"auto": "Automatic", "fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"},
}
#: (minimum, maximum, text shown at the minimum meaning "unset / automatic")
INT_RANGES: dict[str, tuple[int, int, str]] = {
    "epochs": (0, 10_000, "auto"),
    "batch_size": (1, 4096, ""),
    "max_length": (8, 32_768, ""),
    "seed": (0, 2_147_483_647, ""),
    "eval_every": (0, 1_000_000, "each epoch"),
    "threads": (0, 256, "auto (measured)"),
    # 0 is a real choice here (no folds), so "auto" sits below it
    "folds": (-1, 50, "auto"),
}
FLOAT_RANGES: dict[str, tuple[float, float, float, str]] = {  # minimum, maximum, step, special text
    "learning_rate": (0.0, 10.0, 0.0, "auto"),
    "center_rewards_coefficient": (0.0, 100.0, 0.01, ""),
    "weight_decay": (0.0, 10.0, 0.01, ""),
    "val_fraction": (0.0, 0.95, 0.05, ""),
}


class SciSpinBox(QDoubleSpinBox):
    """A float spin box for values like 5e-5: shown with ``g`` formatting, stepped 1-2-5 per decade."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(12)

    def textFromValue(self, value: float) -> str:  # noqa: N802
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text.strip())
        except ValueError:
            return self.minimum()

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        t = text.strip()
        if t == self.specialValueText() and t:
            return QValidator.State.Acceptable, text, pos
        try:
            value = float(t)
        except ValueError:
            ok = t == "" or all(c in "0123456789.eE+-" for c in t)
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        good = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if good else QValidator.State.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        value = self.value()
        ladder = [m * 10.0**e for e in range(-8, 2) for m in (1, 2, 5)]
        if value <= 0:
            index = ladder.index(1e-3) - 1 if steps > 0 else 0
        else:
            index = min(range(len(ladder)), key=lambda i: abs(math.log(ladder[i] / value)))
        index = max(0, min(len(ladder) - 1, index + steps))
        self.setValue(ladder[index])


class ConfigForm(QWidget):
    """A form over ``TrainConfig``'s fields; ``config()`` builds (and validates) the dataclass."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editors: dict[str, QWidget] = {}
        self.labels: dict[str, QLabel] = {}
        self._hints = typing.get_type_hints(TrainConfig)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(8)
        basic = QFormLayout()
        advanced_box = QWidget()
        advanced = QFormLayout(advanced_box)
        for form in (basic, advanced):
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.setHorizontalSpacing(10)
            form.setVerticalSpacing(6)
        advanced.setContentsMargins(0, 0, 0, 0)
        for f in dataclasses.fields(TrainConfig):
            editor = self._make_editor(f)
            editor.setToolTip(f.metadata.get("help", ""))
            label = QLabel(LABELS.get(f.name, f.name.replace("_", " ").capitalize()))
            label.setToolTip(f.metadata.get("help", ""))
            self.editors[f.name] = editor
            self.labels[f.name] = label
            (basic if f.name in BASIC_FIELDS else advanced).addRow(label, editor)
        outer.addLayout(basic)
        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced settings")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setStyleSheet("QToolButton { border: none; padding: 2px 0px; font-weight: 600; }")
        self.advanced_button.toggled.connect(self._toggle_advanced)
        outer.addWidget(self.advanced_button)
        self.advanced = advanced_box
        advanced_box.setVisible(False)
        outer.addWidget(advanced_box)
        self.set_config(TrainConfig())
        mode = self.editors["mode"]
        assert isinstance(mode, QComboBox)  # a Literal field: _make_editor made a combo box
        mode.currentIndexChanged.connect(self._update_dependent)
        self._update_dependent()

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    # ------------------------------------------------------------------ editors from types
    def _make_editor(self, f: dataclasses.Field) -> QWidget:
        hint = self._hints[f.name]
        if typing.get_origin(hint) is Literal:
            combo = QComboBox()
            for value in typing.get_args(hint):
                combo.addItem(CHOICE_LABELS.get(f.name, {}).get(value, str(value)), value)
            combo.currentIndexChanged.connect(self.changed)
            return combo
        base = base_type(hint)
        if base is bool:
            box = QCheckBox()
            box.toggled.connect(self.changed)
            return box
        if base is int:
            lo, hi, special = INT_RANGES.get(f.name, (0, 1_000_000, ""))
            spin = QSpinBox()
            spin.setRange(lo, hi)
            spin.setSpecialValueText(special)
            spin.setAccelerated(True)
            spin.valueChanged.connect(self.changed)
            return spin
        if base is float:
            f_lo, f_hi, step, special = FLOAT_RANGES.get(f.name, (0.0, 1e6, 0.1, ""))
            float_spin: QDoubleSpinBox = SciSpinBox() if f.name == "learning_rate" else QDoubleSpinBox()
            if f.name != "learning_rate":
                float_spin.setDecimals(3)
                float_spin.setSingleStep(step)
            float_spin.setRange(f_lo, f_hi)
            float_spin.setSpecialValueText(special)
            float_spin.valueChanged.connect(self.changed)
            return float_spin
        if f.name == "backbone":
            return self._backbone_editor()
        edit = QLineEdit()
        edit.textChanged.connect(self.changed)
        return edit

    def _backbone_editor(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        self.backbone_edit = QLineEdit()
        self.backbone_edit.setPlaceholderText("minilm (bundled all-MiniLM-L6-v2)")
        self.backbone_edit.textChanged.connect(self.changed)
        browse = QPushButton("Folder…")
        browse.setToolTip("Choose a local Hugging Face model folder (config.json, model.safetensors, tokenizer)")
        browse.clicked.connect(self.choose_backbone)
        bundled = QPushButton("MiniLM")
        bundled.setToolTip("Use the bundled all-MiniLM-L6-v2 (offline)")
        bundled.clicked.connect(lambda: self.backbone_edit.setText(MINILM))
        for b in (browse, bundled):
            b.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            b.setStyleSheet("padding: 4px 8px;")
        row.addWidget(self.backbone_edit, 1)
        row.addWidget(browse)
        row.addWidget(bundled)
        self.backbone_browse = browse
        return box

    def choose_backbone(self) -> None:
        start = str(settings.value("train/backbone_dir", "") or "")
        folder = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder", start)
        if folder:
            settings.set_value("train/backbone_dir", folder)
            self.backbone_edit.setText(folder)

    def _update_dependent(self) -> None:
        mode_box, lora = self.editors["mode"], self.editors["lora"]
        lr_spin, epochs_spin = self.editors["learning_rate"], self.editors["epochs"]
        # the editors _make_editor made for a Literal, a bool, a float and an int field
        assert isinstance(mode_box, QComboBox) and isinstance(lora, QCheckBox)
        assert isinstance(lr_spin, QAbstractSpinBox) and isinstance(epochs_spin, QAbstractSpinBox)
        mode = mode_box.currentData()
        lora.setEnabled(mode == "finetune")
        if mode != "finetune":
            with QSignalBlocker(lora):
                lora.setChecked(False)
        defaults = TrainConfig(mode=mode, lora=mode == "finetune" and lora.isChecked())
        lr_spin.setSpecialValueText(f"auto ({defaults.resolved_lr():g})")
        epochs_spin.setSpecialValueText(f"auto ({defaults.resolved_epochs()})")

    # ------------------------------------------------------------------ values
    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(TrainConfig):
            editor = self.editors[f.name]
            hint = self._hints[f.name]
            optional = type(None) in typing.get_args(hint)
            if isinstance(editor, QComboBox):
                value: Any = editor.currentData()
            elif isinstance(editor, QCheckBox):
                value = editor.isChecked()
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                value = editor.value()
                if optional and value == editor.minimum():
                    value = None
                elif isinstance(editor, QDoubleSpinBox):
                    value = float(value)
            elif f.name == "backbone":
                value = self.backbone_edit.text().strip() or MINILM
            else:
                assert isinstance(editor, QLineEdit)  # every other field is a line edit
                value = editor.text()
            out[f.name] = value
        return out

    def config(self) -> TrainConfig:
        """The configuration on screen; ValueError (naming the field) when it is not valid."""
        return TrainConfig.from_dict(self.values())

    def set_config(self, config: TrainConfig) -> None:
        for f in dataclasses.fields(TrainConfig):
            value = getattr(config, f.name)
            editor = self.editors[f.name]
            with QSignalBlocker(editor):
                if isinstance(editor, QComboBox):
                    editor.setCurrentIndex(max(0, editor.findData(value)))
                elif isinstance(editor, QCheckBox):
                    editor.setChecked(bool(value))
                elif isinstance(editor, QSpinBox):  # noqa: SIM114 - apart: setValue takes an int here, a float below
                    editor.setValue(editor.minimum() if value is None else value)
                elif isinstance(editor, QDoubleSpinBox):
                    editor.setValue(editor.minimum() if value is None else value)
                elif f.name == "backbone":
                    self.backbone_edit.setText(str(value))
                else:
                    assert isinstance(editor, QLineEdit)  # every other field is a line edit
                    editor.setText(str(value))
        self._update_dependent()
