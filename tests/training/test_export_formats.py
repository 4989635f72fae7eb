"""An exported encoder's input format as a chat template: the call paths other tools use give the app's
scores (1e-5), over-length, multi-turn and whitespace-at-the-join pairs included; reusing the folder as a
backbone encodes pairs as before; the card's metadata blocks.

The app's score is ``RewardModel`` on ``PairEncoder``'s ids (what training and evaluation use). Each path
below is named after the tool whose call it repeats."""

from __future__ import annotations

import pytest
import torch

from workbench.training.export import _backbone_card, model_index
from workbench.training.model import (
    PairEncoder,
    _as_messages,
    build_reward_model,
    collate_pairs,
    export_hf,
    load_tokenizer,
)

MAX_LENGTH = 32
LONG = " ".join(f"word{i}" for i in range(80))  # far over MAX_LENGTH tokens: cut from the left
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Name a colour"},
]
PAIRS = [
    ("What is two plus two?", "Four."),  # no whitespace at the join: the app puts a newline there
    ("What is two plus two? ", "Four."),  # whitespace at the join: nothing added
    ("Tell me", "\nA list:\n- one"),
    ("\n\nHuman: Is it safe?\n\nAssistant:", " Yes, mostly."),  # an HH transcript prompt
    (LONG, "The answer survives the cut."),  # over-length: the prompt's start goes
    ("Short", LONG),  # the response alone is over-length: its end is kept
    (CONVERSATION, "Blue."),  # multi-turn
    (CONVERSATION, [{"role": "assistant", "content": "Blue, "}, {"role": "assistant", "content": "or red."}]),
]


@pytest.fixture(scope="module")
def exported(tiny_bert_dir, tmp_path_factory):
    """A tiny BERT reward model with a non-trivial head, exported; (folder, app scores of PAIRS)."""
    model, tokenizer = build_reward_model(tiny_bert_dir, seed=3)
    with torch.no_grad():
        model.head.out.weight.normal_(0, 1.0)
        model.head.out.bias.fill_(0.25)
    model.eval()
    encoder = PairEncoder(tokenizer, MAX_LENGTH)
    encoded = encoder.encode_many([p for p, _ in PAIRS], [r for _, r in PAIRS])
    assert encoded[4].truncated and encoded[5].overlong  # the over-length cases are what they claim
    ids = [e.input_ids for e in encoded]
    batch = collate_pairs(ids[:4], ids[4:], tokenizer.pad_token_id)  # as the trainer batches: padded together
    with torch.no_grad():
        app = model(batch["input_ids"], batch["attention_mask"]).tolist()
    folder = tmp_path_factory.mktemp("rm") / "rm"
    export_hf(model, tokenizer, folder, "# test", max_length=MAX_LENGTH)
    return folder, app


def messages(prompt, response):
    return _as_messages(prompt, "user") + _as_messages(response, "assistant")


def test_rewardbench_path_apply_chat_template_then_the_pipeline(exported):
    """RewardBench (``rewardbench/run_rm.py`` for sequence classifiers): ``tokenizer.apply_chat_template(
    messages, tokenize=False)``, then ``pipeline("text-classification", ...)`` with ``truncation=True``; the
    card's quick start is that call with ``function_to_apply="none"``."""
    from transformers import AutoTokenizer, pipeline

    folder, app = exported
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.truncation_side == "left" and tok.model_max_length == MAX_LENGTH
    rm = pipeline("text-classification", model=str(folder), function_to_apply="none", device="cpu")
    texts = [tok.apply_chat_template(messages(p, r), tokenize=False) for p, r in PAIRS]
    got = [out["score"] for out in rm(texts, truncation=True)]
    assert abs(rm(texts[4], truncation=True)[0]["score"] - app[4]) < 1e-5  # the card's one-text call, as written
    assert max(abs(a - b) for a, b in zip(got, app)) < 1e-5
    assert max(abs(a) for a in app) > 1e-2  # a head that does something


def test_trl_path_maybe_apply_chat_template_then_the_tokenizer(exported):
    """TRL's ``trl.data_utils.maybe_apply_chat_template`` on a conversational example (prompt + completion
    rendered with the template, the prompt with ``add_generation_prompt``), then the tokenizer on
    ``prompt + chosen`` as TRL's standard (string) path does, with left truncation."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl.data_utils import maybe_apply_chat_template

    folder, app = exported
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).eval()
    texts = []
    for prompt, response in PAIRS:
        example = {
            "prompt": _as_messages(prompt, "user"),
            "chosen": _as_messages(response, "assistant"),
            "rejected": _as_messages("No.", "assistant"),
        }
        out = maybe_apply_chat_template(example, tok)
        texts.append(out["prompt"] + out["chosen"])
    batch = tok(texts, truncation=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = model(**batch).logits.squeeze(-1).tolist()
    assert max(abs(a - b) for a, b in zip(got, app)) < 1e-5


def test_the_template_writes_the_apps_text_and_a_one_turn_conversation_says_so(exported, tiny_bert_dir):
    from transformers import AutoTokenizer

    folder, _ = exported
    tok = AutoTokenizer.from_pretrained(folder)
    encoder = PairEncoder(load_tokenizer(tiny_bert_dir), MAX_LENGTH)
    for prompt, response in PAIRS:
        assert tok.apply_chat_template(messages(prompt, response), tokenize=False) == encoder.text(prompt, response)[0]
    # A one-message conversation stored as a conversation is written as one by the app: a template variable.
    one = [{"role": "user", "content": "Hi"}]
    want = encoder.text(one, "Hello")[0]
    assert want == "\n\nHuman: Hi\n\nAssistant: Hello"
    assert tok.apply_chat_template(messages(one, "Hello"), tokenize=False, prompt_is_conversation=True) == want


def test_the_exported_folder_as_a_backbone_encodes_pairs_as_before(exported, tiny_bert_dir):
    folder, _ = exported
    reused = load_tokenizer(str(folder))
    assert reused.chat_template is None  # the app's own metadata (reward_model.json) says it wrote the template
    before = PairEncoder(load_tokenizer(tiny_bert_dir), MAX_LENGTH)
    after = PairEncoder(reused, MAX_LENGTH)
    assert not after.use_chat_template
    prompts, responses = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    assert [e.input_ids for e in after.encode_many(prompts, responses)] == [
        e.input_ids for e in before.encode_many(prompts, responses)
    ]


def test_model_index_is_filled_from_any_metrics_dict_and_the_licence_from_the_backbone():
    index = model_index("rm", "proj", {"validation": {"accuracy": 0.61, "loss": None}, "test": {"accuracy": 0.6}})
    assert [r["dataset"]["split"] for r in index[0]["results"]] == ["validation", "test"]
    assert index[0]["results"][0]["metrics"] == [{"type": "accuracy", "value": 0.61, "name": "validation accuracy"}]
    assert model_index("rm", "proj", {"validation": {"accuracy": None}}) == []
    assert _backbone_card("minilm")["license"] == "apache-2.0"
