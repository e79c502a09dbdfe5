#!/usr/bin/env bash
# Train the bundled Noto score model on the lent GPU machine and leave it under $OUT in pieces
# small enough to come back (≤ 16 MiB each, at most 8 files), with unguided SDEdit translations of
# the source training split made on the GPU (the discriminator's fakes: train-discriminator --fakes).
# Run through the device tool with `carry: ["data/emoji/google/train", "data/emoji/twitter/train"]`
# (prepare them first: npx tsx tools/prepare-emoji.ts):
#
#   bash tools/device-train.sh                 # 7.5 minutes of training, translations, export, ORT check (< 9 min)
#   MINUTES=0.2 PYTHON=/usr/bin/python3.11 SOURCES=/tmp/few OUT=/tmp/o bash tools/device-train.sh --max-steps 2 --ch 32 --groups 8 --batch 4   # CPU smoke test
#
# Back here (docs/emoji-pipeline.md):
#   npx tsx tools/bundle-model.ts --score <files_at>/score --check data/emoji/google/test --default
#   mkdir -p .cache/noto-fakes && cat <files_at>/fakes/fakes-* | tar x -C .cache/noto-fakes
set -euo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
PY=${PYTHON:-python3}
DATA=${DATA:-data/emoji/google/train}
SOURCES=${SOURCES:-data/emoji/twitter/train}
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/score" "$OUT/fakes"
# one shot on a lent machine: whatever happens after the export (a failed ONNX Runtime cross-check,
# say), bring back what exists, so it can be looked at here
set +e
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU visible"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  "$PY" tools/train-score-model.py --data "$DATA" --out "$WORK" --minutes "${MINUTES:-7.5}" \
    --translate "$SOURCES" --translate-out "$WORK/fakes" --t0-range 0.2,0.8 "$@"
} 2>&1 | tee "$OUT/score/train.log"
status=${PIPESTATUS[0]}
set -e
cd "$WORK"
[ -f model.onnx ] || { echo "training or export failed (exit $status); see train.log"; exit "$status"; }
[ "$status" = 0 ] || echo "warning: exit $status after the export; the files come back for a look (see train.log)"
sha256sum model.onnx > "$OUT/score/model.onnx.sha256"
split -b 15M -d -a 2 model.onnx "$OUT/score/part-"
cp manifest.json "$OUT/score/"
[ -d "$WORK/fakes" ] && tar cf - -C "$WORK/fakes" . | split -b 15M -d -a 1 - "$OUT/fakes/fakes-"
ls -la "$OUT/score" "$OUT/fakes"
exit "$status"
