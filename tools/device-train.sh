#!/usr/bin/env bash
# Train the bundled Noto score model on the lent GPU machine and leave it under $OUT in pieces
# small enough to come back (≤ 16 MiB each, at most 8 files). Run through the device tool with
# `carry: ["data/emoji/google/train"]` (prepare it first: npx tsx tools/prepare-emoji.ts):
#
#   bash tools/device-train.sh                 # 8 minutes of training, then export and check
#   MINUTES=0.2 PYTHON=/usr/bin/python3.11 OUT=/tmp/o bash tools/device-train.sh --max-steps 2 --ch 32 --batch 4   # CPU smoke test
#
# Back here: npx tsx tools/bundle-model.ts --score <files_at>/score --check data/emoji/google/test --default
set -euo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
PY=${PYTHON:-python3}
DATA=${DATA:-data/emoji/google/train}
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/score"
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU visible"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  "$PY" tools/train-score-model.py --data "$DATA" --out "$WORK" --minutes "${MINUTES:-8}" "$@"
} 2>&1 | tee "$OUT/score/train.log"
cd "$WORK"
sha256sum model.onnx > "$OUT/score/model.onnx.sha256"
split -b 15M -d -a 2 model.onnx "$OUT/score/part-"
cp manifest.json "$OUT/score/"
ls -la "$OUT/score"
