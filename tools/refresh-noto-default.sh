#!/usr/bin/env bash
# Refresh the bundled Twemoji → Noto default from the CPU-trained U-Net checkpoint, all in the app
# (docs/emoji-pipeline.md §2b, "From the checkpoint to the bundled default"): export the checkpoint's EMA
# weights, check them (never ship noise), make the discriminator's fakes with the new model, continue the
# bundled discriminator's training on them, bundle both as the defaults, and write the evidence
# (docs/results.md), the README's sample grid and the studio screenshots. About 45 minutes on 2 cores
# (nothing else running).
# Stop the U-Net's training first (its checkpoint is read as it is).
#
#   bash tools/refresh-noto-default.sh
#
# Environment (defaults in brackets):
#   FAKES_LIMIT [0]     0: every Twemoji training image; N: only the first N (to rehearse)
#   DISC_MINUTES [20]   the discriminator's training, continued from tools/pretrained/noto-emoji-dg-run
#   EVIDENCE_ARGS []    more options for npm run evidence (--limit 8 to rehearse; --design label=manifest)
#   RECOMMENDED_T0 [0.3], RECOMMENDED_W [32]   what the bundled manifests recommend (docs/results.md)
#   DG_STUDIO_RESOURCES [resources]   bundle elsewhere (to rehearse without touching the repository)
#   WORK [.cache/refresh]             the working folder
#   DOCS [docs]                       where the evidence, the grid and the screenshots go
set -euo pipefail
cd "$(dirname "$0")/.."
RES=${DG_STUDIO_RESOURCES:-resources}
W=${WORK:-.cache/refresh}
DOCS=${DOCS:-docs}
T0=${RECOMMENDED_T0:-0.3}
WEIGHT=${RECOMMENDED_W:-32}
CKPT=tools/pretrained/noto-emoji-unet/checkpoint.safetensors
DISC_RUN=tools/pretrained/noto-emoji-dg-run
# node --import tsx, not tsx: tsx started from a background script does not pass SIGINT on
cli() { node --import tsx src/main/cli/index.ts "$@"; }
[ -d data/emoji/google/test ] || npx tsx tools/prepare-emoji.ts

# the checkpoint's training record (safetensors metadata)
meta() {
  node -e '
    const fs = require("fs"); const fd = fs.openSync(process.argv[1], "r"); const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, 0); const h = Buffer.alloc(Number(b.readBigUInt64LE(0))); fs.readSync(fd, h, 0, h.length, 8);
    console.log(JSON.parse(h.toString()).__metadata__[process.argv[2]]);' "$CKPT" "$1"
}
STEP=$(meta step)
IMAGES=$(meta images)
echo "== 1/6 export the checkpoint (step $STEP, $IMAGES images) and check it"
rm -rf "$W" && mkdir -p "$W/unet" "$W/fakes"
cp "$CKPT" "$W/unet/"
cli train-score-model --data data/emoji/google/train --heldout data/emoji/google/test --out "$W/unet" \
  --resume --steps "$STEP" --channels 32 --mult 1,2,2,2 --attn 16,8 --groups 8 --patch 2 --t-max 0.8 \
  --name "Noto emoji U-Net (trained on a 2-core CPU)" \
  --license "weights: MIT (DG Studio); trained on Noto Emoji images (Apache License 2.0, Google)"
# who trained it, and what it recommends
node -e '
  const fs = require("fs"); const [file, step, images, t0] = process.argv.slice(1);
  const m = JSON.parse(fs.readFileSync(file, "utf8"));
  const k = Math.round(Number(images) / 1000);
  m.description = `ε-prediction U-Net (2.33M parameters, patch 2, t ≤ 0.8) trained on the Noto training split on a 2-core CPU by tools/train-score-model.py (PyTorch): ${Number(step).toLocaleString("en")} steps of 32 (${k} k images), EMA 0.9995; exported to ONNX by DG Studio\u2019s trainer (dg-studio train-score-model --resume). Its checkpoint and training record: tools/pretrained/noto-emoji-unet/.`;
  m.training.trainer = "tools/train-score-model.py (PyTorch 1.13, CPU); exported by dg-studio train-score-model --resume";
  m.recommendedT0 = Number(t0);
  fs.writeFileSync(file, JSON.stringify(m, null, 2) + "\n");' "$W/unet/manifest.json" "$STEP" "$IMAGES" "$T0"
rm "$W/unet/checkpoint.safetensors"
npx tsx tools/bundle-model.ts --score "$W/unet" --check data/emoji/google/test --check-only

echo "== 2/6 the discriminator's fakes: unguided translations of the Twemoji training split (t0 0.5 all; 0.35 odd, 0.65 even)"
mapfile -t SOURCES < <(ls data/emoji/twitter/train | sort)
[ "${FAKES_LIMIT:-0}" -gt 0 ] && SOURCES=("${SOURCES[@]:0:$FAKES_LIMIT}")
mkdir -p "$W/src/all" "$W/src/odd" "$W/src/even"
for i in "${!SOURCES[@]}"; do
  f=${SOURCES[$i]}
  ln -s "$PWD/data/emoji/twitter/train/$f" "$W/src/all/$f"
  if ((i % 2)); then ln -s "$PWD/data/emoji/twitter/train/$f" "$W/src/odd/$f"; else ln -s "$PWD/data/emoji/twitter/train/$f" "$W/src/even/$f"; fi
done
FAKE="--model $W/unet --no-discriminator --keep-names --no-gallery --batch-size 16"
# shellcheck disable=SC2086
cli translate "$W/src/all" $FAKE --t0 0.5 --out "$W/fakes/t0.5" 2>&1 | tail -1
# shellcheck disable=SC2086
cli translate "$W/src/odd" $FAKE --t0 0.35 --seed 10000 --out "$W/fakes/t0.35" 2>&1 | tail -1
# shellcheck disable=SC2086
cli translate "$W/src/even" $FAKE --t0 0.65 --seed 20000 --out "$W/fakes/t0.65" 2>&1 | tail -1

echo "== 3/6 the discriminator: the bundled design (full resolution) continued on the new fakes for ${DISC_MINUTES:-20} min"
# SIGINT at the end of the slice: the trainer writes its package and stops (exit 130 is expected)
timeout -s INT "${DISC_MINUTES:-20}m" node --import tsx src/main/cli/index.ts train-discriminator \
  --model "$W/unet" --source data/emoji/twitter/train --target data/emoji/google/train \
  --fakes "$W/fakes/t0.35" "$W/fakes/t0.5" "$W/fakes/t0.65" --translations 0 --t0 0.2,0.8 \
  --downsample 1 --init "$DISC_RUN" --steps 1000000 --out "$W/dg" || true
[ -f "$W/dg/manifest.json" ] || { echo "the discriminator run wrote no package" >&2; exit 1; }
node -e '
  const fs = require("fs"); const [file, w] = process.argv.slice(1);
  const m = JSON.parse(fs.readFileSync(file, "utf8"));
  m.name = "Twemoji vs Noto (full resolution, trained in DG Studio)";
  m.recommendedWeight = Number(w);
  fs.writeFileSync(file, JSON.stringify(m, null, 2) + "\n");' "$W/dg/manifest.json" "$WEIGHT"

echo "== 4/6 bundle both as the defaults"
npx tsx tools/bundle-model.ts --score "$W/unet" --check data/emoji/google/test --name noto-emoji-unet \
  --discriminator "$W/dg" --discriminator-name noto-emoji-dg --default
REHEARSAL=$([ "$RES" = resources ] && [ "$DOCS" = docs ] && echo no || echo yes)
# the discriminator's training state, for the next refresh (not from a rehearsal)
# (checkpoint.safetensors since the one checkpoint format; an older run's checkpoint/ folder is replaced by it)
[ "$REHEARSAL" = no ] && rm -rf "$DISC_RUN/checkpoint" && cp "$W/dg/checkpoint.safetensors" "$DISC_RUN/checkpoint.safetensors"

echo "== 5/6 the evidence: $DOCS/results.md"
# shellcheck disable=SC2086
npx tsx tools/evidence.ts --name "B2: full resolution" --discriminator "$RES/models/noto-emoji-dg/manifest.json" \
  --docs "$DOCS" --reading docs/results-reading.md --grid-t0 "$T0" --grid-weight "$WEIGHT" ${EVIDENCE_ARGS:-}

echo "== 6/6 the README's sample grid and studio screenshots"
cli translate resources/samples/ --no-discriminator --keep-names --no-gallery --out "$W/grid/sdedit" 2>&1 | tail -1
cli translate resources/samples/ --keep-names --no-gallery --out "$W/grid/dg" 2>&1 | tail -1
npx tsx tools/samples-grid.ts "$W/grid/sdedit" "$W/grid/dg" "DG (w = $WEIGHT)" "$DOCS/screenshots/samples.png"
if [ "$REHEARSAL" = no ]; then
  npm run build >/dev/null
  npx tsx tools/readme-screenshots.ts # the repository's resources/ into docs/screenshots/
else
  echo "(a rehearsal: the studio screenshots are left as they are)"
fi
git status --short -- "$RES" "$DOCS" "$DISC_RUN" 2>/dev/null || true
echo "now: read the samples and the evidence, update the README's numbers and docs/results-reading.md, commit"
