"""A BERT-family encoder's first-token states on the CPU without padding, its last layer at the first token only.

Why: a reward model reads one vector per text, the final hidden state of its first token, and a CPU's
matrix kernels cost the same per row whether a row is a real token or padding. The stock forward pads every
text of a batch to the longest, and computes the last layer's attention output and feed-forward block for
every position although only the first token's survives. Here the tokens of a batch are packed into one
[tokens, hidden] matrix for every linear layer, attention runs per text on exactly its own tokens, and the
last layer computes its query, attention output and feed-forward block at the first token alone (keys and
values still at every token, since the first token attends to all of them). The function, and so its
gradients, are those of the stock padded forward to float rounding; FlashAttention's BERT does the same
("unpadding", "last-layer subset") on GPUs.

Measured on MiniLM with the HH pairs, one thread, interleaved with the stock forward in one process
(fine-tuning steps of batch 8 at max length 256, 12% of the padded tokens padding): packing alone 1.10-1.15x
the steps/s, packing and the last layer at the first token 1.19-1.28x (``benchmarks/bench_train.py
--patch padded`` measures it again). On a GPU a batch of small per-text attention calls costs more kernel
launches than the padding it saves, so there the stock padded forward runs (:func:`applies`).

It relies on the module layout that BERT, RoBERTa, XLM-R and CamemBERT share in transformers
(``embeddings``; ``encoder.layer[i]`` with ``attention.self.{query,key,value}``, ``attention.output``,
``intermediate``, ``output``); any other encoder (MPNet, with its relative position bias) keeps the stock
forward. ``tests/training/test_packed.py`` checks rewards and every gradient against the stock forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Model types whose layers are BERT's, by how their position ids start: BERT counts from 0, the RoBERTa
#: family from ``pad_token_id + 1`` (what ``create_position_ids_from_input_ids`` gives a right-padded row).
_FIRST_POSITION = {
    "bert": lambda config: 0,
    "roberta": lambda config: config.pad_token_id + 1,
    "xlm-roberta": lambda config: config.pad_token_id + 1,
    "camembert": lambda config: config.pad_token_id + 1,
}

#: Off only for measurement (``bench_train.py --patch padded``): the stock padded forward everywhere.
ENABLED = True

#: The packed token matrix's rows are rounded up to a multiple of this with padding rows that no text reads.
#: Why: every activation of a pass is [rows, width], and glibc's heap keeps freed blocks for reuse; with rows
#: of a new count at every pass the freed space was cut into pieces no later block fitted, and the heap grew
#: through a run. Measured with ``bench_train.py`` on MiniLM and the HH pairs (one epoch of 1,442 pairs, one
#: thread, same run): peak memory 1,498 MB at 6.36 pairs/s with 128, against 1,835 MB at 6.22 unrounded
#: (``--patch rows1``); the earlier remedy, glibc mapping blocks of 2 MB and more for themselves, had cost
#: 7-11% of the speed (a mapped block's pages are new at every pass). ``--patch rowsN`` measures others.
ROW_MULTIPLE = 128


def supports(backbone: nn.Module) -> bool:
    """Whether ``backbone`` (a bare model or a PeftModel around one) has the layout this module runs."""
    base = _base(backbone)
    if getattr(base.config, "model_type", None) not in _FIRST_POSITION or base.config.is_decoder:
        return False
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    return hasattr(base, "embeddings") and isinstance(layers, nn.ModuleList) and len(layers) > 0


def applies(backbone: nn.Module, input_ids: torch.Tensor) -> bool:
    """Packed on the CPU only, and not while gradient checkpointing is on (it lives in the stock layer calls,
    which the packed forward does not make); scoring under it (no gradients) is packed."""
    base = _base(backbone)
    checkpointing = (
        base.training
        and torch.is_grad_enabled()
        and any(getattr(layer, "gradient_checkpointing", False) for layer in base.encoder.layer)
    )
    return ENABLED and input_ids.device.type == "cpu" and not checkpointing


def first_token_states(
    backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor | None:
    """The final hidden state of each row's first token [B, H], as the stock forward gives it for the
    right-padded batch (``input_ids``, ``attention_mask``); None when the batch is not right-padded or has
    an empty row, where the caller runs the stock forward."""
    mask = attention_mask.bool()
    lengths = mask.sum(1)
    columns = torch.arange(mask.shape[1], device=mask.device)
    if input_ids.shape[0] == 0 or bool((lengths == 0).any()) or not torch.equal(mask, columns < lengths[:, None]):
        return None
    base = _base(backbone)
    config = base.config
    ids = input_ids[mask]  # row by row: each text's tokens, contiguous
    segments = lengths.tolist()
    positions = [torch.arange(n, device=ids.device) for n in segments]
    spare = -ids.shape[0] % ROW_MULTIPLE
    if spare:  # one segment of padding after the texts, all at the first position: read by no text
        ids = torch.cat([ids, ids.new_full((spare,), config.pad_token_id or 0)])
        positions.append(ids.new_zeros(spare))
        segments.append(spare)
    first_position = _FIRST_POSITION[config.model_type](config)
    firsts = torch.cumsum(lengths, 0) - lengths
    h = base.embeddings(input_ids=ids[None], position_ids=(torch.cat(positions) + first_position)[None])[0]
    layers = base.encoder.layer
    for layer in layers[:-1]:
        h = _layer(layer, h, segments, base.training)
    return _layer(layers[-1], h, segments, base.training, queries=firsts)


def _layer(
    layer: Any, h: torch.Tensor, segments: list[int], training: bool, queries: torch.Tensor | None = None
) -> torch.Tensor:
    """One BERT layer on packed tokens ``h`` [N, H] in ``segments`` of rows that attend to each other (the
    texts, then any padding); with ``queries`` (one row index per text, in order), the layer's output at those
    rows only."""
    attn = layer.attention.self
    heads, size = attn.num_attention_heads, attn.attention_head_size
    n = h.shape[0]
    hq = h if queries is None else h.index_select(0, queries)
    # [1, heads, tokens, size] views: the layout the CPU flash-attention kernel takes without copying
    q = attn.query(hq).view(1, -1, heads, size).transpose(1, 2)
    k = attn.key(h).view(1, n, heads, size).transpose(1, 2)
    v = attn.value(h).view(1, n, heads, size).transpose(1, 2)
    q_lens = segments if queries is None else [1] * len(queries)
    dropout = attn.dropout.p if training else 0.0
    context = torch.cat(
        [
            F.scaled_dot_product_attention(qi, ki, vi, dropout_p=dropout, scale=attn.scaling)
            # with queries, the padding segment has none: zip stops at the last text
            for qi, ki, vi in zip(q.split(q_lens, 2), k.split(segments, 2), v.split(segments, 2), strict=False)
        ],
        dim=2,
    )
    context = context.transpose(1, 2).reshape(hq.shape[0], heads * size)
    h1 = layer.attention.output(context, hq)
    return layer.output(layer.intermediate(h1), h1)


def _base(backbone: nn.Module) -> Any:
    """The transformers model inside a PeftModel (whose LoRA layers replace the linear layers in place)."""
    get_base = getattr(backbone, "get_base_model", None)
    return get_base() if callable(get_base) else backbone
