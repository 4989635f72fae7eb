"""The packed encoder forward (``training/packed.py``) against the stock padded forward of transformers:
the same first-token states, rewards and parameter gradients, on random BERT-layout encoders and MiniLM."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest
import torch
from training_helpers import collect
from transformers import (
    BertConfig,
    BertModel,
    CamembertConfig,
    CamembertModel,
    MPNetConfig,
    MPNetModel,
    RobertaConfig,
    RobertaModel,
    XLMRobertaConfig,
    XLMRobertaModel,
)
from wb_testing import make_synthetic_project

from workbench.training import packed
from workbench.training.config import TrainConfig
from workbench.training.events import RunStarted
from workbench.training.model import (
    MINILM,
    PairEncoder,
    RewardModel,
    build_reward_model,
    collate_pairs,
    pad_batch,
)
from workbench.training.trainer import Trainer

SIZES = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48, vocab_size=120)
ENCODERS = {
    "bert": (BertConfig, BertModel),
    "roberta": (RobertaConfig, RobertaModel),
    "xlm-roberta": (XLMRobertaConfig, XLMRobertaModel),
    "camembert": (CamembertConfig, CamembertModel),
}


def _tiny(kind: str, seed: int = 0) -> RewardModel:
    config_cls, model_cls = ENCODERS[kind]
    torch.manual_seed(seed)
    config = config_cls(
        **SIZES, max_position_embeddings=80, pad_token_id=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    model = RewardModel(model_cls(config), "mlp", seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # a trained-looking head: equal rewards are then not equal zeros
        for p in model.head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


def _batch(lengths: list[int], pad: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    seqs = [[3, *torch.randint(4, SIZES["vocab_size"], (n - 1,), generator=gen).tolist()] for n in lengths]
    return pad_batch(seqs, pad)


def _stock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed, "ENABLED", False)


def _rewards_and_grads(model: RewardModel, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    rewards = model(ids, mask)
    weights = torch.linspace(-1.0, 2.0, rewards.numel())
    (rewards.flatten() * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return rewards.detach(), grads


@pytest.mark.parametrize("kind", sorted(ENCODERS))
def test_rewards_and_every_gradient_equal_the_stock_forward(kind, monkeypatch):
    model = _tiny(kind)
    model.train()
    assert model._packable
    ids, mask = _batch([7, 1, 23, 40, 2, 40, 15])  # a one-token text, two unpadded rows
    assert packed.first_token_states(model.backbone, ids, mask) is not None  # the packed path runs
    r_packed, g_packed = _rewards_and_grads(model, ids, mask)
    _stock(monkeypatch)
    r_stock, g_stock = _rewards_and_grads(model, ids, mask)
    assert r_stock.abs().max() > 0.1
    torch.testing.assert_close(r_packed, r_stock, atol=1e-5, rtol=1e-5)
    assert g_packed.keys() == g_stock.keys()
    assert "backbone.embeddings.word_embeddings.weight" in g_packed
    assert any(".encoder.layer.2.output.dense" in name for name in g_packed)  # the last layer learns too
    for name, grad in g_stock.items():
        torch.testing.assert_close(g_packed[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_batches_that_are_not_right_padded_or_have_an_empty_row_run_the_stock_forward(monkeypatch):
    model = _tiny("bert").eval()
    seqs = [[3, 5, 6, 7], [3, 9]]
    left_ids, left_mask = pad_batch(seqs, 1, padding_side="left")
    assert packed.first_token_states(model.backbone, left_ids, left_mask) is None
    empty_ids, empty_mask = pad_batch([[3, 5], []], 1)
    assert packed.first_token_states(model.backbone, empty_ids, empty_mask) is None
    with torch.no_grad():
        left = model(left_ids, left_mask)
        _stock(monkeypatch)
        assert torch.equal(left, model(left_ids, left_mask))  # the fallback is the stock forward itself


def test_other_layouts_and_gradient_checkpointing_keep_the_stock_forward():
    config = MPNetConfig(**SIZES, max_position_embeddings=80, pad_token_id=1)
    mpnet = RewardModel(MPNetModel(config), "linear")
    assert not mpnet._packable  # relative position bias: not BERT's layout
    model = _tiny("bert")
    ids, _ = _batch([4, 6])
    assert packed.applies(model.backbone, ids)
    model.enable_gradient_checkpointing()
    model.train()
    assert not packed.applies(model.backbone, ids)
    with torch.no_grad():  # scoring has no activations to recompute
        assert packed.applies(model.backbone, ids)


def test_lora_adapters_on_an_encoder_are_packed_too(monkeypatch):
    model = _tiny("bert")
    model.apply_lora(r=4, alpha=8, dropout=0.0, target_modules=["query", "value"])
    model.set_trainable("finetune")
    with torch.no_grad():  # LoRA's B starts at zero: make the adapters matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    ids, mask = _batch([9, 3, 17])
    r_packed, g_packed = _rewards_and_grads(model, ids, mask)
    _stock(monkeypatch)
    r_stock, g_stock = _rewards_and_grads(model, ids, mask)
    torch.testing.assert_close(r_packed, r_stock, atol=1e-5, rtol=1e-5)
    assert any("lora_A" in name for name in g_stock)
    for name, grad in g_stock.items():
        torch.testing.assert_close(g_packed[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_minilm_on_hh_pairs_scores_as_the_stock_forward(hh_rows, monkeypatch):
    model, tok = build_reward_model(MINILM, "mlp", seed=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    model.eval()
    enc = PairEncoder.for_model(model, tok, 256)
    rows = hh_rows[:12]
    chosen = enc.encode_many([r["chosen"] for r in rows], [""] * len(rows))
    rejected = enc.encode_many([r["rejected"] for r in rows], [""] * len(rows))
    batch = collate_pairs([e.input_ids for e in chosen], [e.input_ids for e in rejected], tok.pad_token_id)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() == 256 and lengths.min() < 200  # truncated and padded texts both
    with torch.no_grad():
        fast = model(batch["input_ids"], batch["attention_mask"])
        _stock(monkeypatch)
        stock = model(batch["input_ids"], batch["attention_mask"])
    assert stock.std() > 0.01
    torch.testing.assert_close(fast, stock, atol=1e-5, rtol=1e-5)


GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh process each time: the setting lasts for the rest of the process, and where a block comes from
# depends on what the process freed before.
_MAPPED_BLOCKS = textwrap.dedent(
    """
    import ctypes, sys, torch
    from workbench.training import packed

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    applied = packed.map_large_blocks() is not None if sys.argv[1] == "mapped" else False
    big = torch.ones(16 << 18)
    del big  # glibc's default now keeps blocks up to 16 MB in its heap
    before = libc.mallinfo2().hblkhd
    block = torch.ones(3 << 18)  # a 3 MB activation
    held = libc.mallinfo2().hblkhd - before
    del block
    print(applied, held, libc.mallinfo2().hblkhd - before)
    """
)


def _three_mb_block(how: str) -> tuple[str, int, int]:
    out = subprocess.run([sys.executable, "-c", _MAPPED_BLOCKS, how], capture_output=True, text=True, check=True)
    applied, held, after = out.stdout.split()
    return applied, int(held), int(after)


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's (mallopt); other C libraries keep their own")
def test_large_blocks_get_memory_of_their_own_and_return_it_when_freed():
    """After glibc has freed a 16 MB block its default keeps a 3 MB activation in the heap, where freed space
    of every packed size fragments; after ``map_large_blocks`` the block is mapped, and unmapped when freed."""
    assert _three_mb_block("default") == ("False", 0, 0)
    applied, held, after = _three_mb_block("mapped")
    assert applied == "True" and held >= 3 << 20 and after == 0


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's (mallopt); other C libraries keep their own")
def test_a_cpu_fine_tune_maps_large_blocks_and_a_head_run_leaves_the_allocator_alone(tmp_path, tiny_bert_dir):
    notes = {}
    for mode in ("head", "finetune"):
        path = make_synthetic_project(tmp_path / f"{mode}.wbp")
        cfg = TrainConfig(backbone=tiny_bert_dir, mode=mode, epochs=1, folds=0, threads=1)
        started = next(e for e in collect(Trainer(path, cfg)) if isinstance(e, RunStarted))
        notes[mode] = started.details["heap_note"]
    assert notes["head"] is None
    assert "2 MB" in notes["finetune"]
