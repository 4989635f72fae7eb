import json
from pathlib import Path

import pytest
import torch

from workbench.training.model import (
    BackboneError,
    PairEncoder,
    RewardModel,
    batch_width,
    build_reward_model,
    collate_pairs,
    export_hf,
    resolve_backbone_path,
)

PAIRS = [
    ("\n\nHuman: How do I bake bread?\n\nAssistant:", " Mix flour, water, salt and yeast, then knead."),
    ("\n\nHuman: What is the capital of France?\n\nAssistant:", " Paris."),
    ("\n\nHuman: Can you help me?\n\nAssistant:", " I am sorry, I cannot help with that request at all, sorry."),
]


@pytest.fixture(scope="module")
def tiny_roberta_dir(tmp_path_factory, tiny_bert_dir):
    """RoBERTa's classifier keeps its tanh layer in the head, not in a pooler: the other export layout."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    out = tmp_path_factory.mktemp("tiny_roberta")
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    config = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _randomise_head(model: RewardModel, seed: int = 1) -> None:
    """A trained-looking head, so equal scores are not equal zeros."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def _encode(model, tok, max_length=64, pairs=PAIRS):
    encoder = PairEncoder.for_model(model, tok, max_length)
    return encoder, [e.input_ids for e in encoder.encode_many([p for p, _ in pairs], [r for _, r in pairs])]


def _scores(model, ids, pad, side="right"):
    half = len(ids) // 2
    batch = collate_pairs(ids[:half], ids[half:], pad, padding_side=side)
    with torch.no_grad():
        return model.eval()(batch["input_ids"], batch["attention_mask"])


def test_resolve_backbone_path(tmp_path, tiny_bert_dir):
    assert Path(resolve_backbone_path("minilm"), "config.json").is_file()
    assert resolve_backbone_path(tiny_bert_dir) == str(Path(tiny_bert_dir).resolve())
    with pytest.raises(BackboneError, match="local Hugging Face model folder"):
        resolve_backbone_path(str(tmp_path / "nowhere"))
    with pytest.raises(BackboneError, match="config.json"):
        resolve_backbone_path(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(BackboneError, match="safetensors"):
        resolve_backbone_path(str(tmp_path))


def test_encoder_pools_the_first_token_and_head_is_separate(tiny_bert_dir):
    model, tok = build_reward_model(tiny_bert_dir, head="linear", seed=0)
    assert model.pooling == "first_token" and not model.is_decoder
    _, ids = _encode(model, tok, pairs=PAIRS[:2])
    batch = collate_pairs(ids[:1], ids[1:], tok.pad_token_id)
    model.eval()
    with torch.no_grad():
        hidden = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        pooled = model.embed(batch["input_ids"], batch["attention_mask"])
        torch.testing.assert_close(pooled, hidden[:, 0], atol=1e-5, rtol=1e-5)  # packed.py: equal to rounding
        assert torch.equal(model.head(pooled), model(batch["input_ids"], batch["attention_mask"]))
        assert torch.equal(model(batch["input_ids"], batch["attention_mask"]), torch.zeros(2))  # zero-init head


def test_trainable_parameters_per_mode(tiny_bert_dir):
    model, _ = build_reward_model(tiny_bert_dir, head="linear")
    head_params = model.set_trainable("head")
    assert {id(p) for p in head_params} == {id(p) for p in model.head.out.parameters()}
    assert len(model.set_trainable("finetune")) == len(list(model.backbone.parameters())) + 2
    mlp, _ = build_reward_model(tiny_bert_dir, head="mlp")
    assert len(mlp.set_trainable("head")) == 4


def test_mlp_head_refused_for_decoders(tiny_gpt2_dir):
    with pytest.raises(BackboneError, match="linear"):
        build_reward_model(tiny_gpt2_dir, head="mlp")


@pytest.mark.parametrize("fixture", ["tiny_gpt2_dir", "tiny_llama_dir"])
def test_decoder_reads_the_last_real_token_whatever_the_padding(fixture, request):
    model, tok = build_reward_model(request.getfixturevalue(fixture))
    assert model.is_decoder and model.pooling == "last_token" and tok.pad_token_id == tok.eos_token_id
    _randomise_head(model)
    _, ids = _encode(model, tok, pairs=PAIRS + PAIRS[:1])
    right = _scores(model, ids, tok.pad_token_id, "right")
    left = _scores(model, ids, tok.pad_token_id, "left")
    alone = torch.cat([_scores(model, [s, s], tok.pad_token_id)[:1] for s in ids])
    assert len(set(map(len, ids))) > 1
    torch.testing.assert_close(right, left, atol=1e-5, rtol=0)
    torch.testing.assert_close(right, alone, atol=1e-5, rtol=0)


def test_batch_width_rounds_up_to_16_within_max_length():
    assert [batch_width(n, 256) for n in (0, 1, 16, 17, 250, 256)] == [0, 16, 16, 32, 256, 256]
    assert batch_width(100, 110) == 110 and batch_width(110, 110) == 110  # never past what the model takes


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_gpt2_dir"])
def test_extra_padding_does_not_change_rewards(fixture, request):
    """The trainer pads batches to a multiple of 16: the masked positions must not move any reward."""
    model, tok = build_reward_model(request.getfixturevalue(fixture))
    _randomise_head(model)
    _, ids = _encode(model, tok, pairs=PAIRS + PAIRS[:1])
    longest = max(map(len, ids))
    half = len(ids) // 2
    rounded = collate_pairs(ids[:half], ids[half:], tok.pad_token_id, width=batch_width(longest, 64))
    assert rounded["input_ids"].shape[1] % 16 == 0 and rounded["input_ids"].shape[1] > longest
    with torch.no_grad():
        wide = model.eval()(rounded["input_ids"], rounded["attention_mask"])
    torch.testing.assert_close(wide, _scores(model, ids, tok.pad_token_id), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="shorter than the longest"):
        collate_pairs(ids[:half], ids[half:], tok.pad_token_id, width=longest - 1)


def test_decoder_score_is_read_before_a_trailing_pad_eos(tiny_gpt2_dir):
    """pad = eos here; a text ending in eos is scored where the stock classifier reads it."""
    model, tok = build_reward_model(tiny_gpt2_dir)
    _randomise_head(model)
    _, (ids,) = _encode(model, tok, pairs=PAIRS[:1])
    with_eos = ids + [tok.eos_token_id]
    batch = collate_pairs([with_eos], [ids], tok.pad_token_id)
    with torch.no_grad():
        scores = model.eval()(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(scores[0], scores[1], atol=1e-6, rtol=0)


def _exported_scores(out, texts, max_length, chat_template=False):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    seq = AutoModelForSequenceClassification.from_pretrained(out, num_labels=1)
    tok = AutoTokenizer.from_pretrained(out)
    assert not seq.training
    batch = tok(
        texts,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
        add_special_tokens=not chat_template,
    )
    with torch.no_grad():
        return seq(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)


@pytest.mark.parametrize(
    "fixture, head",
    [
        ("tiny_bert_dir", "linear"),
        ("tiny_bert_dir", "mlp"),
        ("tiny_roberta_dir", "linear"),
        ("tiny_roberta_dir", "mlp"),
        ("tiny_gpt2_dir", "linear"),
        ("tiny_llama_dir", "linear"),
    ],
)
def test_export_scores_exactly_like_the_app(fixture, head, request, tmp_path):
    model, tok = build_reward_model(request.getfixturevalue(fixture), head=head)
    _randomise_head(model)
    encoder, ids = _encode(model, tok, max_length=24, pairs=PAIRS + PAIRS[:1])  # 24: some pairs are truncated
    ours = _scores(model, ids, tok.pad_token_id)
    out = export_hf(model, tok, tmp_path / "export", "# Test reward model\n", max_length=24)
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert "Test reward model" in (out / "README.md").read_text()
    texts = [encoder.text(p, r)[0] for p, r in PAIRS + PAIRS[:1]]
    theirs = _exported_scores(out, texts, 24, chat_template=encoder.use_chat_template)
    assert ours.abs().max() > 1e-3
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def test_export_after_finetuning_with_lora(tiny_bert_dir, tmp_path):
    model, tok = build_reward_model(tiny_bert_dir, head="linear")
    model.apply_lora(r=4, alpha=8)
    params = model.set_trainable("finetune")
    assert params and all("lora_" in n or n.startswith("head.") for n, p in model.named_parameters() if p.requires_grad)
    _, ids = _encode(model, tok)
    batch = collate_pairs(ids, ids, tok.pad_token_id)
    opt = torch.optim.AdamW(params, lr=0.05)
    model.train()
    for _ in range(2):  # moves both the LoRA weights and the head off their initial values
        loss = model(batch["input_ids"], batch["attention_mask"]).square().sub(1).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    ours = _scores(model, ids + ids, tok.pad_token_id)
    out = export_hf(model, tok, tmp_path / "lora", max_length=64)
    encoder = PairEncoder.for_model(model, tok, 64)
    theirs = _exported_scores(out, [encoder.text(p, r)[0] for p, r in PAIRS * 2], 64)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    assert model.has_lora  # the live model keeps its adapters


@pytest.mark.slow
def test_checkpoint_and_trainer_import_without_a_cycle():
    """model.py builds a model from a config; checkpoint and trainer both use it and neither imports the
    other at module level (each import order works in a fresh interpreter)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    for first, second in (("checkpoint", "trainer"), ("trainer", "checkpoint")):
        code = (
            f"import workbench.training.{first}, workbench.training.{second}, sys; "
            "print('workbench.training.trainer' in sys.modules and 'checkpoint' in dir(sys.modules["
            "'workbench.training.trainer']))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
            env={**__import__("os").environ, "PYTHONPATH": str(repo)},
        )
        assert out.returncode == 0, out.stderr[-2000:]
    checkpoint_source = (repo / "workbench/training/checkpoint.py").read_text(encoding="utf-8")
    assert "workbench.training.trainer" not in checkpoint_source


def test_build_model_follows_the_config(tiny_bert_dir):
    from workbench.training.config import TrainConfig
    from workbench.training.model import build_model

    model, _ = build_model(TrainConfig(backbone=tiny_bert_dir, mode="finetune", lora=True))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert model.has_lora and trained and all("lora_" in n or n.startswith("head.") for n in trained)
    assert "head.out.bias" not in trained  # trains only with reward centring
    head_only, _ = build_model(TrainConfig(backbone=tiny_bert_dir, mode="head"))
    assert all(n.startswith("head.") for n, p in head_only.named_parameters() if p.requires_grad)
