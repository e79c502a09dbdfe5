#!/usr/bin/env bash
# Refresh the bundled Twemoji → Noto default from the EDM U-Net's checkpoint (tools/pretrained/noto-emoji-unet-edm,
# docs/emoji-pipeline.md §2b, "From the checkpoint to the bundled default"): export the checkpoint's EMA weights
# (PyTorch: the EDM wrapper as an ε network of the DDPM steps), check them (never ship noise), train the
# discriminator on the new model's fakes (the pilot's design: a 16×16 view, label smoothing 0.1, R1 1, a cosine
# learning rate; docs/benchmarks.md, dg-pilot) — with ROUNDS=2 also its round 2 (dg-math §10) —,
# bundle both as the defaults, and write the evidence (docs/results.md), the README's sample grid and the studio
# screenshots. About an hour and a quarter on 2 cores (nothing else running). Stop the U-Net's training first (its
# checkpoint is read as it is).
#
#   bash tools/refresh-noto-default.sh
#   UNTIL=bundle bash tools/refresh-noto-default.sh     # stop after bundling (measure the weight, then FROM=evidence)
#   FROM=evidence RECOMMENDED_W=16 bash tools/refresh-noto-default.sh
#
# Environment (defaults in brackets):
#   FAKES_LIMIT [0]     0: every Twemoji training image; N: only the first N (to rehearse)
#   DISC_STEPS [3000]   the discriminator's training steps (batch 32)
#   ROUNDS [1]          2: also its round 2 on round 1's guided translations (dg-math §10; FD 0.73–0.78× plain at
#                       equal L2 against one round's 0.79–0.83×, but DG costs ~1.16× plain: docs/benchmarks.md, dg-pilot)
#   EVIDENCE_ARGS []    more options for npm run evidence (--limit 8 to rehearse; --design label=manifest)
#   RECOMMENDED_T0 [0.3], RECOMMENDED_W [16]   what the bundled manifests recommend (docs/benchmarks.md, dg-pilot)
#   RECOMMENDED_SIGMA_MIN [0.04]   the U-Net's ladder floor (dg-math §8; docs/benchmarks.md, sigma-floor), written at
#                       export so that the discriminator's fakes are sampled as users' translations are
#   EDM_RUN [tools/pretrained/noto-emoji-unet-edm]   the checkpoint's folder (a stretch trained elsewhere)
#   FROM [export], UNTIL [screenshots]   the first and last stage: export, discriminator, bundle, evidence, screenshots
#   DG_STUDIO_RESOURCES [resources]   bundle elsewhere (to rehearse without touching the repository)
#   WORK [.cache/refresh]             the working folder
#   DOCS [docs]                       where the evidence, the grid and the screenshots go
set -euo pipefail
cd "$(dirname "$0")/.."
RES=${DG_STUDIO_RESOURCES:-resources}
W=${WORK:-.cache/refresh}
DOCS=${DOCS:-docs}
T0=${RECOMMENDED_T0:-0.3}
WEIGHT=${RECOMMENDED_W:-16}
SIGMA_MIN=${RECOMMENDED_SIGMA_MIN:-0.04}
RUN=${EDM_RUN:-tools/pretrained/noto-emoji-unet-edm}
LABEL="E: 16×16 view, smooth"
[ "${ROUNDS:-1}" -ge 2 ] && LABEL="$LABEL, two rounds"
DISC_RUN=tools/pretrained/noto-emoji-dg-run
STAGES=(export discriminator bundle evidence screenshots)
index() { for i in "${!STAGES[@]}"; do [ "${STAGES[$i]}" = "$1" ] && echo "$i" && return; done; echo "no stage $1 (${STAGES[*]})" >&2; exit 2; }
FIRST=$(index "${FROM:-export}")
LAST=$(index "${UNTIL:-screenshots}")
stage() { local i; i=$(index "$1"); [ "$i" -ge "$FIRST" ] && [ "$i" -le "$LAST" ]; }
# node --import tsx, not tsx: tsx started from a background script does not pass SIGINT on
cli() { node --import tsx src/main/cli/index.ts "$@"; }
[ -d data/emoji/google/test ] || npx tsx tools/prepare-emoji.ts

if stage export; then
  echo "== export the checkpoint and check it"
  rm -rf "$W" && mkdir -p "$W/unet"
  cp "$RUN/checkpoint.safetensors" "$W/unet/"
  EDM_OUT="$W/unet" bash tools/train-noto-edm.sh 0 --export 2>&1 | tail -1
  # what it is, who trained it and its ladder floor (the t0 it recommends is written when it is bundled)
  node -e '
    const fs = require("fs"); const [file, sigmaMin] = process.argv.slice(1);
    const m = JSON.parse(fs.readFileSync(file, "utf8")); const t = m.training;
    m.name = "Noto emoji U-Net (EDM preconditioning)";
    m.description = `U-Net (2.33M parameters, patch 2, t ≤ 0.8) trained with EDM preconditioning on the Noto training split by tools/train-score-model.py (PyTorch): ${t.steps.toLocaleString("en")} steps, ${(t.imagesSeen / 1e6).toFixed(2)} M images — the first 5,749 steps at batch 512 in 10 minutes on a lent GPU, the rest at batch 32 on a 2-core CPU; EMA 0.9995. Exported as an ε network of the 1000 DDPM steps. Its checkpoint and training record: tools/pretrained/noto-emoji-unet-edm/.`;
    m.license = "weights: MIT (DG Studio); trained on Noto Emoji images (Apache License 2.0, Google)";
    m.recommendedSigmaMin = Number(sigmaMin);
    fs.writeFileSync(file, JSON.stringify(m, null, 2) + "\n");' "$W/unet/manifest.json" "$SIGMA_MIN"
  rm "$W/unet/checkpoint.safetensors"
  npx tsx tools/bundle-model.ts --score "$W/unet" --check data/emoji/google/test --check-only
fi

if stage discriminator; then
  echo "== the discriminator: the new model's fakes (default sampler, 10 steps, t0 0.2…0.6), ${DISC_STEPS:-3000} steps"
  SRC=data/emoji/twitter/train
  if [ "${FAKES_LIMIT:-0}" -gt 0 ]; then
    SRC="$W/src" && rm -rf "$SRC" && mkdir -p "$SRC"
    mapfile -t SOURCES < <(ls data/emoji/twitter/train | sort)
    for f in "${SOURCES[@]:0:$FAKES_LIMIT}"; do ln -s "$PWD/data/emoji/twitter/train/$f" "$SRC/$f"; done
  fi
  rm -rf "$W/dg1" "$W/dg"
  cli train-discriminator --model "$W/unet" --source "$SRC" --target data/emoji/google/train \
    --t0 0.2,0.6 --translations 1 --translation-steps 10 --downsample 4 --steps "${DISC_STEPS:-3000}" --out "$W/dg1" 2>&1 |
    grep -v "^unguided translations: [0-9]*[1-9]0/" || true
  [ -f "$W/dg1/manifest.json" ] || { echo "the discriminator run wrote no package" >&2; exit 1; }
  if [ "${ROUNDS:-1}" -ge 2 ]; then
    # round 2 (dg-math §10): a narrow network (16-32-32, no attention) trained against round 1's guided translations
    echo "== the discriminator's round 2: fakes guided by round 1 at w $WEIGHT"
    cli train-discriminator --model "$W/unet" --source "$SRC" --target data/emoji/google/train --refine "$W/dg1" \
      --refine-weight "$WEIGHT" --t0 0.2,0.6 --translations 1 --translation-steps 10 --downsample 4 \
      --channels 16,32,32 --attention-at none --steps "${DISC_STEPS:-3000}" --out "$W/dg" 2>&1 |
      grep -v "^guided translations: [0-9]*[1-9]0/" || true
    [ -f "$W/dg/manifest.json" ] || { echo "the round-2 run wrote no package" >&2; exit 1; }
  else
    cp -r "$W/dg1" "$W/dg"
  fi
fi

if stage bundle; then
  echo "== bundle both as the defaults (recommended t0 $T0, w $WEIGHT)"
  node -e '
    const fs = require("fs"); const [file, w] = process.argv.slice(1);
    const m = JSON.parse(fs.readFileSync(file, "utf8"));
    const rounds = m.refinements ? ", two rounds" : "";
    m.name = `Twemoji vs Noto (16×16 view, smooth${rounds}; trained in DG Studio)`;
    m.recommendedWeight = Number(w);
    fs.writeFileSync(file, JSON.stringify(m, null, 2) + "\n");' "$W/dg/manifest.json" "$WEIGHT"
  node -e '
    const fs = require("fs"); const [file, t0] = process.argv.slice(1);
    const m = JSON.parse(fs.readFileSync(file, "utf8")); m.recommendedT0 = Number(t0);
    fs.writeFileSync(file, JSON.stringify(m, null, 2) + "\n");' "$W/unet/manifest.json" "$T0"
  npx tsx tools/bundle-model.ts --score "$W/unet" --check data/emoji/google/test --name noto-emoji-unet \
    --discriminator "$W/dg" --discriminator-name noto-emoji-dg --default
  # the discriminator's training state, for a later --init (not from a rehearsal)
  if [ "$RES" = resources ] && [ "$DOCS" = docs ]; then
    rm -rf "$DISC_RUN/checkpoint" && cp "$W/dg1/checkpoint.safetensors" "$DISC_RUN/checkpoint.safetensors"
  fi
fi

if stage evidence; then
  echo "== the evidence: $DOCS/results.md"
  # every held-out pair (764, ~25 minutes): on 64 the roughness ratio moves by 0.02–0.03 with the seeds alone and FD
  # is biased by the set's size (docs/benchmarks.md, dg-pilot, fourteenth session)
  # shellcheck disable=SC2086
  npx tsx tools/evidence.ts --name "$LABEL" --discriminator "$RES/models/noto-emoji-dg/manifest.json" \
    --t0s 0.3,0.4,0.5,0.55 --weights 0,8,16,32 --limit 0 --floor-t0 0.5 \
    --docs "$DOCS" --reading docs/results-reading.md --grid-t0 "$T0" --grid-weight "$WEIGHT" ${EVIDENCE_ARGS:-}
fi

if stage screenshots; then
  echo "== the README's sample grid and studio screenshots"
  cli translate resources/samples/ --no-discriminator --keep-names --no-gallery --out "$W/grid/sdedit" 2>&1 | tail -1
  cli translate resources/samples/ --keep-names --no-gallery --out "$W/grid/dg" 2>&1 | tail -1
  npx tsx tools/samples-grid.ts "$W/grid/sdedit" "$W/grid/dg" "DG (w = $WEIGHT)" "$DOCS/screenshots/samples.png"
  if [ "$RES" = resources ] && [ "$DOCS" = docs ]; then
    npm run build >/dev/null
    npx tsx tools/readme-screenshots.ts # the repository's resources/ into docs/screenshots/
  else
    echo "(a rehearsal: the studio screenshots are left as they are)"
  fi
fi
git status --short -- "$RES" "$DOCS" "$DISC_RUN" 2>/dev/null || true
echo "now: read the samples and the evidence, update the README's numbers and docs/results-reading.md, commit"
