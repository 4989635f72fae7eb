import pytest

from workbench.training.model import PairEncoder, load_tokenizer

PROMPT = "\n\nHuman: " + "Tell me a long story about a dragon and a knight and a castle. " * 6 + "\n\nAssistant:"
RESPONSE = " Once upon a time a dragon lived in a castle, and the knight came to talk."


@pytest.fixture(scope="module")
def bert_tok(tiny_bert_dir):
    return load_tokenizer(tiny_bert_dir)


def test_short_pair_is_kept_whole_with_cls_and_sep(bert_tok):
    enc = PairEncoder(bert_tok, 256).encode("\n\nHuman: hi\n\nAssistant:", " hello there")
    assert not enc.truncated and not enc.overlong
    assert enc.input_ids[0] == bert_tok.cls_token_id and enc.input_ids[-1] == bert_tok.sep_token_id
    assert bert_tok.decode(enc.input_ids, skip_special_tokens=True) == "human : hi assistant : hello there"


def test_left_truncation_cuts_the_prompt_and_keeps_the_response(bert_tok):
    encoder = PairEncoder(bert_tok, 48)
    enc = encoder.encode(PROMPT, RESPONSE)
    assert enc.truncated and not enc.overlong and len(enc.input_ids) == 48
    assert enc.input_ids[0] == bert_tok.cls_token_id and enc.input_ids[-1] == bert_tok.sep_token_id
    text = bert_tok.decode(enc.input_ids, skip_special_tokens=True)
    assert text.endswith("assistant : once upon a time a dragon lived in a castle, and the knight came to talk.")
    assert not text.startswith("human")
    # exactly what the saved tokenizer (truncation_side="left") gives a user of the exported model
    text_in, _ = encoder.text(PROMPT, RESPONSE)
    assert text_in == PROMPT + RESPONSE
    assert bert_tok(text_in, truncation=True, max_length=48)["input_ids"] == enc.input_ids


def test_response_longer_than_the_budget_is_flagged_not_dropped(bert_tok):
    response = " " + " ".join(f"word{i}" for i in range(60)) + " the end"
    encs = PairEncoder(bert_tok, 32).encode_many([PROMPT, "\n\nHuman: hi\n\nAssistant:"], [response, " ok"])
    long, short = encs
    assert long.overlong and long.truncated and long.response_tokens > 30
    assert len(long.input_ids) == 32 and long.input_ids[0] == bert_tok.cls_token_id
    assert bert_tok.decode(long.input_ids, skip_special_tokens=True).endswith("the end")
    assert not short.overlong and sum(e.overlong for e in encs) == 1


def test_plain_join_adds_a_newline_only_when_needed(bert_tok):
    encoder = PairEncoder(bert_tok, 64)
    assert encoder.text("What is 2+2?", "4") == ("What is 2+2?\n4", 13)
    assert encoder.text("Q: ", "A") == ("Q: A", 3)
    assert encoder.text("Q:", " A") == ("Q: A", 2)
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hey"},
        {"role": "user", "content": "bye?"},
    ]
    assert encoder.text(messages, "bye")[0] == "\n\nHuman: hi\n\nAssistant: hey\n\nHuman: bye?\n\nAssistant: bye"


def test_chat_template(tiny_llama_dir):
    tok = load_tokenizer(tiny_llama_dir)
    assert tok.pad_token_id == tok.eos_token_id
    encoder = PairEncoder(tok, 64)
    assert encoder.use_chat_template
    text, start = encoder.text("How do I bake bread?", "Knead it.")
    assert text == "<|user|>\nHow do I bake bread?<|endoftext|><|assistant|>\nKnead it.<|endoftext|>"
    assert text[start:] == "Knead it.<|endoftext|>"
    enc = encoder.encode("How do I bake bread?", "Knead it.")
    full = tok(text, add_special_tokens=False)["input_ids"]
    assert full[-1] == tok.pad_token_id  # kept: the model reads the score before it, as stock classes do
    assert enc.input_ids == full and not enc.truncated


def test_gpt2_encoding_has_no_special_tokens(tiny_gpt2_dir):
    tok = load_tokenizer(tiny_gpt2_dir)
    encoder = PairEncoder(tok, 16)
    enc = encoder.encode(PROMPT, RESPONSE)
    assert len(enc.input_ids) == 16 and enc.truncated
    assert tok.decode(enc.input_ids).endswith("talk.")
    assert enc.input_ids == tok(PROMPT + RESPONSE, truncation=True, max_length=16)["input_ids"]


def test_max_length_beyond_the_backbone_is_refused(bert_tok):
    with pytest.raises(ValueError, match="max_length"):
        PairEncoder(bert_tok, 1024)
