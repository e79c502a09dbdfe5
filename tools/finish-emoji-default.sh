#!/usr/bin/env bash
# After the GPU run (tools/device-train.sh), everything else on the CPU, in order
# (docs/emoji-pipeline.md, steps 3–5): check and bundle the score model, train the discriminator
# on the GPU-made fakes starting from the pre-trained weights, bundle both as the defaults, and
# write docs/results.md. About 2 hours on 2 cores with the default DISC_STEPS.
#
#   bash tools/finish-emoji-default.sh <folder the device run returned: with score/ and fakes/>
#
# Environment: DISC_STEPS (6000), INIT (tools/pretrained/twemoji-vs-noto-disc), EVIDENCE_ARGS (""),
# BUNDLE_ARGS ("" — e.g. "--max-ratio 1e9" only to rehearse with an untrained model, never to ship),
# DG_STUDIO_RESOURCES (resources/ — another folder to rehearse without touching the repository).
set -euo pipefail
R=${1:?give the folder the device run returned (it holds score/ and fakes/)}
INIT=${INIT:-tools/pretrained/twemoji-vs-noto-disc}
RES=${DG_STUDIO_RESOURCES:-resources}
[ -d data/emoji/google/test ] || npx tsx tools/prepare-emoji.ts
npm run build >/dev/null

echo "== 1/4 check the score model (refused if it does not beat the linear denoiser)"
# shellcheck disable=SC2086
npx tsx tools/bundle-model.ts --score "$R/score" --check data/emoji/google/test --name noto-emoji-unet ${BUNDLE_ARGS:-}

echo "== 2/4 the discriminator's fakes (unguided translations made on the GPU)"
rm -rf .cache/noto-fakes && mkdir -p .cache/noto-fakes
cat "$R"/fakes/fakes-* | tar x -C .cache/noto-fakes
echo "$(ls .cache/noto-fakes | wc -l) fakes"

echo "== 3/4 train the discriminator (init: $INIT)"
node bin/dg-studio.js train-discriminator --model "$RES/models/noto-emoji-unet/manifest.json" \
  --source data/emoji/twitter/train --target data/emoji/google/train --fakes .cache/noto-fakes \
  --translations 0 --t0 0.2,0.8 --init "$INIT" --steps "${DISC_STEPS:-6000}" --eval-every 1000 \
  --out .cache/noto-dg
# shellcheck disable=SC2086
npx tsx tools/bundle-model.ts --score "$R/score" --check data/emoji/google/test --name noto-emoji-unet \
  --discriminator .cache/noto-dg --default ${BUNDLE_ARGS:-}

echo "== 4/4 the evidence: docs/results.md"
# shellcheck disable=SC2086
npm run evidence -- ${EVIDENCE_ARGS:-}
git status --short -- "$RES" docs 2>/dev/null || true
