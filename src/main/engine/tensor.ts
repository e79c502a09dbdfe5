/** Plain batch tensors: a Float32Array and a shape whose first axis is the batch. */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

export function tensor(data: Float32Array, shape: readonly number[]): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== data.length) throw new Error(`shape [${shape.join(', ')}] needs ${size} values, got ${data.length}`);
  return { data, shape: [...shape] };
}

export function zerosLike(t: Tensor): Tensor {
  return { data: new Float32Array(t.data.length), shape: [...t.shape] };
}

export function batchSize(t: Tensor): number {
  return t.shape[0]!;
}

/** Elements per batch item. */
export function itemSize(t: Tensor): number {
  return t.data.length / t.shape[0]!;
}

/** out = a + b·c, where c is one scalar per batch item. */
export function addScaledPerItem(a: Tensor, b: Tensor, c: ArrayLike<number>): Tensor {
  const out = new Float32Array(a.data.length);
  const per = itemSize(a);
  for (let n = 0; n < a.shape[0]!; n++) {
    const k = c[n]!;
    for (let i = n * per; i < (n + 1) * per; i++) out[i] = a.data[i]! + k * b.data[i]!;
  }
  return { data: out, shape: [...a.shape] };
}

/** out = ca·a + cb·b, per batch item coefficients. */
export function combinePerItem(a: Tensor, ca: ArrayLike<number>, b: Tensor, cb: ArrayLike<number>): Tensor {
  const out = new Float32Array(a.data.length);
  const per = itemSize(a);
  for (let n = 0; n < a.shape[0]!; n++) {
    const ka = ca[n]!;
    const kb = cb[n]!;
    for (let i = n * per; i < (n + 1) * per; i++) out[i] = ka * a.data[i]! + kb * b.data[i]!;
  }
  return { data: out, shape: [...a.shape] };
}

/** A per-item array holding one value for every item. */
export function filled(count: number, value: number): Float64Array {
  return new Float64Array(count).fill(value);
}

/** Index of the first non-finite value, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}
