/** Image sizes the back end and the studio agree on (the studio says beforehand what the back end will do). */

/** The size an image is translated at by a latent model: its aspect, longest side ≤ maxSide, sides multiples of `multiple`. */
export function latentSize(width: number, height: number, maxSide = 512, multiple = 8): { width: number; height: number } {
  const k = Math.min(1, maxSide / Math.max(width, height));
  const round = (v: number) => Math.max(multiple, Math.round((v * k) / multiple) * multiple);
  return { width: round(width), height: round(height) };
}
