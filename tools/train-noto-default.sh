#!/usr/bin/env bash
# The bundled default's score model, trained on this repository's 2-core CPU in working stretches
# (docs/emoji-pipeline.md): checkpoints every 5 minutes into tools/pretrained/noto-emoji-unet/
# (committed), held-out denoising error every 10 minutes into its eval.csv. Run it again to resume.
#
#   bash tools/train-noto-default.sh 120        # minutes of this stretch (SIGINT/SIGTERM: checkpoint and stop)
#
# PyTorch (Debian's python3-torch) with OpenBLAS (apt-get install libopenblas0-openmp: Debian's
# reference BLAS makes its matmuls ~7x slower) is used while bench/score-train.ts says it is faster
# than the app's own trainer; the app resumes the same checkpoint with
#   dg-studio train-score-model --resume --out tools/pretrained/noto-emoji-unet --data data/emoji/google/train …
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-120}
OUT=tools/pretrained/noto-emoji-unet
exec env OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ${PYTHON:-/usr/bin/python3} tools/train-score-model.py \
  --data data/emoji/google/train --heldout data/emoji/google/test --out "$OUT" \
  --ch 32 --mult 1,2,2,2 --attn 16,8 --groups 8 --patch 2 --t-max 0.8 \
  --batch 32 --lr 2e-4 --warmup 500 --ema 0.9995 --seed 0 \
  --ckpt-minutes 5 --eval-minutes 10 --minutes "$MINUTES" --resume --no-export
