"""Why the model prefers a response: one (prompt, response) reward attributed to the response's tokens and
sentences, with captum (the maintained attribution library for torch).

The model is a :class:`~workbench.training.scoring.Scorer` (an exported folder, or a run's latest checkpoint
turned into the same stock sequence classifier), and the input is built exactly as ``Scorer.score`` builds
it (``PairEncoder``: one segment, left truncation), so the reward reported here is the reward the run
scores for the pair. Only the response is attributed: the prompt's tokens are context. They keep their
values in every baseline and every ablation, so what is measured is how each part of the response moves
the reward *given this prompt*; tokens cut off by left truncation get no score.

Methods (``METHODS``):

* ``"occlusion"``: captum ``FeatureAblation`` with one feature per sentence: the sentence's tokens are
  removed from attention (attention mask 0) and the pair re-scored, all sentences in one batch. A sentence's
  score is r(x) - r(x without it); its tokens share that score evenly.
* ``"ig"``: captum ``LayerIntegratedGradients`` on the word-embedding layer, ``n_steps`` 16, from a
  baseline where each response token is [MASK] (pad when there is none). Token scores sum to about
  r(x) - r(baseline) (completeness); a sentence's score is its tokens' sum.
* ``"gxi"``: gradient x input on the word embeddings (captum ``LayerGradientXActivation``): one backward
  pass, the cheapest; a sentence's score is its tokens' sum.

The default is occlusion, chosen by ``benchmarks/bench_attribution.py`` (HH pairs, bundled MiniLM, head-mode
run, 1 CPU thread). Against the ground truth of deleting each sentence's text and re-scoring, occlusion's
sentence scores rank-correlate 0.58 with it (IG 0.24, gradient x input -0.02), and deleting its top sentence
drops the reward by -0.003 against -0.034 for a random sentence (IG -0.033, gxi -0.035: no better than
random). It is also the fastest: 0.73 s for a median pair (both responses) and 2.0 s for a 256-token pair,
against 7.6 s / 17.9 s for IG (16 steps, whose completeness error was still 136 %) and 1.6 s / 3.3 s for
gradient x input. Sentences are what the detail pane shows, so faithfulness at the sentence level decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

METHODS = ("occlusion", "ig", "gxi")
DEFAULT_METHOD = "occlusion"
#: integrated-gradients steps (a speed bound; completeness is loose at 16 on MiniLM: see the benchmark)
IG_STEPS = 16
#: ablated copies per forward pass in occlusion (memory bound: a 256-token MiniLM batch of 16 is ~60 MB)
OCCLUSION_BATCH = 16

Text = str | list[dict]
#: (text, start, end, score): ``text == response[start:end]``
Span = tuple[str, int, int, float]

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+|\n\s*")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``; consecutive, covering it exactly (trailing space and
    newlines stay with the sentence before them)."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            spans.append((start, match.end()))
            start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def response_text(response: Text) -> str:
    """The plain text of a response, as offsets into it are counted (a message list: its contents joined)."""
    return response if isinstance(response, str) else "".join(m["content"] for m in response)


@dataclass
class _Encoded:
    input_ids: list[int]
    #: model position of each response token, and its (start, end) in the response's text
    positions: list[int]
    spans: list[tuple[int, int]]
    text: str
    truncated: bool


class Attributor:
    """Rewards and attributions of one scorer's model; holds the model, so callers keep one per model."""

    def __init__(self, scorer: Any):
        self.scorer = scorer
        self.model = scorer.model
        self.encoder = scorer.encoder
        tokenizer = scorer.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("attribution needs a fast tokenizer (character offsets); this model's is a slow one")
        self.tokenizer = tokenizer
        self.baseline_id = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.pad_token_id

    # ----------------------------------------------------------------- encoding, as the scorer does it
    def _encode(self, prompt: Text, response: Text) -> _Encoded:
        full, bound = self.encoder.text(prompt, response)
        rtext = response_text(response)
        found = full.find(rtext, bound) if rtext else -1
        rstart = found if found >= 0 else bound
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        budget = self.encoder.budget
        cut = max(0, len(ids) - budget)
        prefix = list(self.encoder._prefix)
        input_ids = prefix + ids[cut:] + list(self.encoder._suffix)
        expected = self.encoder.encode(prompt, response).input_ids
        if input_ids != expected:  # a template or tokenizer this mapping does not follow: say so, never mis-map
            raise ValueError("cannot map this model's input back to the response's characters")
        positions, spans = [], []
        for i in range(cut, len(ids)):
            s, e = offsets[i]
            s, e = max(s, rstart) - rstart, min(e, rstart + len(rtext)) - rstart
            if e > s:
                positions.append(len(prefix) + i - cut)
                spans.append((s, e))
        return _Encoded(input_ids, positions, spans, rtext, cut > 0)

    def _forward(self) -> Callable[..., Any]:
        model = self.model

        def forward(input_ids: Any, attention_mask: Any) -> Any:
            return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]

        return forward

    def rewards(self, pairs: list[tuple[Text, Text]]) -> list[float]:
        """Rewards of (prompt, response) pairs, as ``Scorer.score`` computes them."""
        if not pairs:
            return []
        return [float(x) for x in self.scorer.score([p for p, _ in pairs], [r for _, r in pairs])]

    # ----------------------------------------------------------------- attribution
    def attribute(self, prompt: Text, response: Text, method: str = DEFAULT_METHOD) -> dict[str, Any]:
        """{"reward", "tokens": [Span], "sentences": [Span], "method", "truncated", "baseline_reward"?}.

        Token spans are the response's tokens that the model reads (character offsets into the response's
        text); sentence spans cover the text exactly. "truncated": the prompt (or the response's start)
        was cut to fit; sentences entirely cut away score 0."""
        import torch

        if method not in METHODS:
            raise ValueError(f"unknown attribution method {method!r}; known: {', '.join(METHODS)}")
        enc = self._encode(prompt, response)
        ids = torch.tensor([enc.input_ids], dtype=torch.long)
        mask = torch.ones_like(ids)
        sentences = split_sentences(enc.text)
        owner = [_owner(sentences, s) for s, _ in enc.spans]  # each token's sentence
        forward = self._forward()
        with torch.inference_mode():
            reward = float(forward(ids, mask)[0])
        out: dict[str, Any] = {"method": method, "truncated": enc.truncated}
        token_scores: list[float]
        sentence_scores = [0.0] * len(sentences)
        if not enc.positions:
            token_scores = []
        elif method == "occlusion":
            from captum.attr import FeatureAblation

            groups = torch.full_like(ids, len(sentences))  # prompt and special tokens: one extra group, not shown
            for pos, k in zip(enc.positions, owner):
                groups[0, pos] = k

            def keep_forward(keep: Any) -> Any:
                n = keep.shape[0]
                return forward(ids.expand(n, -1), keep.long())

            with torch.no_grad():
                attr = FeatureAblation(keep_forward).attribute(
                    mask.float(),
                    baselines=0.0,
                    feature_mask=groups,
                    perturbations_per_eval=OCCLUSION_BATCH,
                )[0]
            sizes = [0] * len(sentences)
            for k in owner:
                sizes[k] += 1
            for k in range(len(sentences)):
                if sizes[k]:
                    sentence_scores[k] = float(attr[enc.positions[owner.index(k)]])
            token_scores = [sentence_scores[k] / sizes[k] for k in owner]
        else:
            from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

            layer = self.model.get_input_embeddings()
            with torch.enable_grad():
                if method == "ig":
                    baseline = ids.clone()
                    baseline[0, enc.positions] = self.baseline_id
                    attr = LayerIntegratedGradients(forward, layer).attribute(
                        ids,
                        baselines=baseline,
                        additional_forward_args=(mask,),
                        n_steps=IG_STEPS,
                        internal_batch_size=IG_STEPS,
                    )
                    with torch.inference_mode():
                        out["baseline_reward"] = float(forward(baseline, mask)[0])
                else:
                    attr = LayerGradientXActivation(forward, layer).attribute(ids, additional_forward_args=(mask,))
            per_token = attr[0].sum(-1).detach()
            token_scores = [float(per_token[p]) for p in enc.positions]
            for k, score in zip(owner, token_scores):
                sentence_scores[k] += score
        out["reward"] = reward
        out["tokens"] = [(enc.text[s:e], s, e, v) for (s, e), v in zip(enc.spans, token_scores)]
        out["sentences"] = [(enc.text[s:e], s, e, v) for (s, e), v in zip(sentences, sentence_scores)]
        return out

    def pair(self, prompt: Text, chosen: Text, rejected: Text, method: str | None = DEFAULT_METHOD) -> dict[str, Any]:
        """Both responses' rewards and the margin (chosen - rejected), with their attributions unless
        ``method`` is None (a what-if edit's quick answer)."""
        r_chosen, r_rejected = self.rewards([(prompt, chosen), (prompt, rejected)])
        out: dict[str, Any] = {"r_chosen": r_chosen, "r_rejected": r_rejected, "margin": r_chosen - r_rejected}
        if method is not None:
            out["chosen"] = self.attribute(prompt, chosen, method)
            out["rejected"] = self.attribute(prompt, rejected, method)
            out["method"] = method
        return out


def _owner(sentences: list[tuple[int, int]], start: int) -> int:
    """The sentence holding character ``start``."""
    for k, (s, e) in enumerate(sentences):
        if s <= start < e:
            return k
    return len(sentences) - 1
