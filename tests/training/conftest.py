"""Tiny offline models for training tests: random weights, real tokenizers, built in a second or two.

``tiny_bert_dir`` (in ``tests/conftest.py``, shared with the UI tests) is a 2-layer, 32-wide BERT with
the bundled MiniLM's WordPiece tokenizer (so [CLS]/[SEP] handling is real); ``tiny_gpt2_dir`` is a 2-layer GPT-2 with a byte-level BPE trained
on a few sentences and *no pad token* (the common case the model code must handle);
``tiny_llama_dir`` is a 2-layer Llama with that tokenizer plus a chat template whose turns end in
eos, the case where pad = eos must not move the score.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)


def _one_thread_for_auto() -> None:
    """Runs with threads=0 ("auto") use one thread in these tests, as they did before the probe existed: the
    session's data folder (tests/conftest.py) gets a cached choice of 1, so curves compared to 1e-6 never
    depend on a probe run under a neighbour's load. test_threads.py probes in folders of its own."""
    import json

    from workbench.training import threads

    path = threads.default_cache_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        one = {"threads": 1, "seconds": {}}
        path.write_text(json.dumps({threads.machine_key(k): one for k in ("finetune", "score")}), encoding="utf-8")


_one_thread_for_auto()

_SENTENCES = [
    "\n\nHuman: How do I bake bread at home?\n\nAssistant: Mix flour, water, salt and yeast, then knead.",
    "\n\nHuman: What is the capital of France?\n\nAssistant: Paris is the capital of France.",
    "\n\nHuman: Can you help me with my homework?\n\nAssistant: Sure, what is the question?",
    "I am sorry, I cannot help with that request. Let me know if there is anything else.",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,:;'\"()[]{}<>/-_+=*&^%$#@~`|\\",
]
EOS = "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}" + EOS + "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _bpe_tokenizer(chat_template: str | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[EOS, "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_SENTENCES * 5, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS)
    if chat_template:
        fast.chat_template = chat_template
    return fast


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> str:
    from transformers import GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("tiny_gpt2")
    tokenizer = _bpe_tokenizer()
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2, bos_token_id=eos, eos_token_id=eos
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny_llama")
    tokenizer = _bpe_tokenizer(CHAT_TEMPLATE)
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)
