#!/usr/bin/env bash
# One call on a lent GPU machine (the device tool), two trainings side by side, their results left under $OUT
# in pieces small enough to come back (≤ 16 MiB each, at most 8 files):
#
#   1. the Noto score model with the default's architecture and EDM preconditioning (issue 26), from scratch,
#      batch 512: tools/train-noto-edm.sh into a scratch folder → $OUT/edm-ckpt-{0,1} (the checkpoint, split);
#   2. the tiny Stable Diffusion-family model (issue 27): tools/train-tiny-sd.py → $OUT/tiny-sd-{0,1} (weights);
#   and $OUT/records.tgz: both logs, the EDM eval.csv, the tiny model's train.json and samples.png.
#
# The tracked tree is over the tool's 64 MiB, so the call carries only what it needs: leave tools/pretrained/
# and resources/ out of the index for the call (git rm -r --cached …; restore with git reset), and carry
# data/emoji/google and data/emoji/twitter (npx tsx tools/prepare-emoji.ts first). Then:
#
#   bash tools/device-train.sh                       # < 8 minutes of the machine
#   EDM_MINUTES=0.2 SD_AE_MINUTES=0.05 SD_UNET_MINUTES=0.05 OUT=/tmp/o PYTHON=/usr/bin/python3 bash tools/device-train.sh   # CPU smoke test
#
# Back here:
#   cat <files_at>/edm-ckpt-* > tools/pretrained/noto-emoji-unet-edm/checkpoint.safetensors
#   cat <files_at>/tiny-sd-* > DIR/weights.safetensors && python3 tools/train-tiny-sd.py --out DIR --export-only
set -uo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1
WORK=$(mktemp -d)
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU visible"
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'

EDM_OUT=$WORK/edm BATCH=${BATCH:-512} EVAL_MINUTES=1 CKPT_MINUTES=2 \
  timeout -s INT 450 bash tools/train-noto-edm.sh "${EDM_MINUTES:-6}" > "$WORK/edm.log" 2>&1 &
edm=$!
timeout 480 "$PYTHON" tools/train-tiny-sd.py --out "$WORK/tiny-sd" --ae-minutes "${SD_AE_MINUTES:-2}" \
  --unet-minutes "${SD_UNET_MINUTES:-3.5}" > "$WORK/tiny-sd.log" 2>&1 &
sd=$!
while kill -0 $edm 2>/dev/null || kill -0 $sd 2>/dev/null; do
  sleep 30
  echo "--- $(date +%T)"; tail -n 2 "$WORK/edm.log"; tail -n 1 "$WORK/tiny-sd.log"
done
wait $edm; edm_status=$?
wait $sd; sd_status=$?
echo "exit: score model $edm_status, tiny SD $sd_status"

[ -f "$WORK/edm/checkpoint.safetensors" ] && split -b 15M -d -a 1 "$WORK/edm/checkpoint.safetensors" "$OUT/edm-ckpt-"
[ -f "$WORK/tiny-sd/weights.safetensors" ] && split -b 15M -d -a 1 "$WORK/tiny-sd/weights.safetensors" "$OUT/tiny-sd-"
cp "$WORK/edm/eval.csv" "$WORK/edm-eval.csv" 2>/dev/null
cp "$WORK/tiny-sd/train.json" "$WORK/tiny-sd/samples.png" "$WORK" 2>/dev/null
(cd "$WORK" && tar czf "$OUT/records.tgz" edm.log tiny-sd.log $(ls edm-eval.csv train.json samples.png 2>/dev/null))
(cd "$OUT" && sha256sum ./* > SHA256SUMS)
ls -la "$OUT"
tail -n 4 "$WORK/edm.log" "$WORK/tiny-sd.log"
