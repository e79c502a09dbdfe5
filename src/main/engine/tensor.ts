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

/** A coefficient: one number for the whole batch, or one per batch item. */
export type Coef = number | ArrayLike<number>;
const coefAt = (c: Coef, n: number) => (typeof c === 'number' ? c : c[n]!);

/** ca·a + cb·b (coefficients per batch item, or one for all). */
export function combinePerItem(a: Tensor, ca: Coef, b: Tensor, cb: Coef): Tensor {
  const out = new Float32Array(a.data.length);
  const per = itemSize(a);
  for (let n = 0; n < a.shape[0]!; n++) {
    const ka = coefAt(ca, n);
    const kb = coefAt(cb, n);
    for (let i = n * per; i < (n + 1) * per; i++) out[i] = ka * a.data[i]! + kb * b.data[i]!;
  }
  return { data: out, shape: [...a.shape] };
}

/** k·x */
export function scale(x: Tensor, k: Coef): Tensor {
  const out = new Float32Array(x.data.length);
  const per = itemSize(x);
  for (let n = 0; n < x.shape[0]!; n++) {
    const kn = coefAt(k, n);
    for (let i = n * per; i < (n + 1) * per; i++) out[i] = kn * x.data[i]!;
  }
  return { data: out, shape: [...x.shape] };
}

/** y + a·x (BLAS's axpy, returning a new tensor) */
export function axpy(a: Coef, x: Tensor, y: Tensor): Tensor {
  return combinePerItem(y, 1, x, a);
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
