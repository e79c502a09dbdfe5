/** Median and spread of repeated measurements. */
export function summarize(values: number[]): { median: number; min: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, min: s[0]!, max: s.at(-1)! };
}

export const fmt = (ms: number) => `${ms.toFixed(2)} ms`;
