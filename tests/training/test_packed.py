"""The packed encoder forward (``training/packed.py``) against the stock padded forward of transformers:
the same first-token states, rewards and parameter gradients, on random BERT-layout encoders and MiniLM."""

from __future__ import annotations

import pytest
import torch
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

from workbench.training import packed
from workbench.training.model import (
    MINILM,
    PairEncoder,
    RewardModel,
    build_reward_model,
    collate_pairs,
    pad_batch,
)

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


@pytest.mark.parametrize("row_multiple", [1, 50])  # 128 tokens: no padding segment, then one of 22 rows
@pytest.mark.parametrize("kind", sorted(ENCODERS))
def test_rewards_and_every_gradient_equal_the_stock_forward(kind, row_multiple, monkeypatch):
    monkeypatch.setattr(packed, "ROW_MULTIPLE", row_multiple)
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


def test_packed_rows_come_in_multiples_and_the_last_layer_runs_at_the_first_tokens_only(monkeypatch):
    """The heap reuses blocks of a few sizes (``packed.ROW_MULTIPLE``); the padding rows change nothing."""
    model = _tiny("bert").eval()
    rows: list[int] = []
    for layer in model.backbone.encoder.layer:
        layer.intermediate.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    ids, mask = _batch([9, 3, 17])
    rounded_rows = -(-29 // packed.ROW_MULTIPLE) * packed.ROW_MULTIPLE
    with torch.no_grad():
        rounded = model(ids, mask)
        assert rows == [rounded_rows, rounded_rows, 3]
        rows.clear()
        monkeypatch.setattr(packed, "ROW_MULTIPLE", 1)
        exact = model(ids, mask)
    assert rows == [29, 29, 3]
    torch.testing.assert_close(rounded, exact, atol=1e-6, rtol=1e-6)
