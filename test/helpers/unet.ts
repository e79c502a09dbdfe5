import { buildUNet, type BuiltUNet, type UNetArch } from '../../src/main/engine/nn/unet.js';
import { Rng } from '../../src/main/engine/rng.js';

/** An 8×8 U-Net small enough for gradient checks and a few training steps in a test. */
export const TINY_UNET: UNetArch = { channels: 8, mult: [1, 2], attn: [4], groups: 4, resolution: 8, patch: 1, imageChannels: 3 };

/** A U-Net whose every weight is moved off its (partly zero) initialisation, so no layer hides a wrong gradient or output. */
export function randomizedUNet(arch: UNetArch, seed: number): BuiltUNet {
  const built = buildUNet(arch, seed);
  const rng = new Rng(seed + 1);
  for (const p of built.params) {
    const t = built.model.graph.initializers.get(p)!;
    built.model.graph.initializers.set(p, { ...t, data: (t.data as Float32Array).map((v) => v + 0.2 * rng.normal()) });
  }
  return built;
}
