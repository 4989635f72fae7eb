#!/usr/bin/env bash
# Ours against TRL's RewardTrainer on a CUDA GPU, with the bundled MiniLM and a small random Qwen2-style decoder
# (benchmarks/tiny_decoder.py: no download). Each line of JSON is bench_train.py's last line for one setting.
#
#   bash benchmarks/bench_gpu.sh            # all shared HH pairs
#   QUICK=1 bash benchmarks/bench_gpu.sh    # 240 train / 120 validation pairs
#
# fp32 first (TF32 matmuls on both sides), then bf16 autocast (TRL: bf16=True). Needs a CUDA build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "bench_gpu.sh: no CUDA GPU visible to torch")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
QUICKFLAG=${QUICK:+--quick}
DECODER=$(mktemp -d)/tiny-qwen2
python benchmarks/tiny_decoder.py "$DECODER" --hidden 512 --layers 8 >/dev/null
for backbone in minilm "$DECODER"; do
  for precision in fp32 bf16; do
    echo "== backbone $(basename "$backbone"), $precision" >&2
    python benchmarks/bench_train.py $QUICKFLAG --device cuda --precision "$precision" --backbone "$backbone" \
      --batch-size 8 --skip embed --skip head | tail -n 1
  done
done
