/**
 * Adam / AdamW over Float32Arrays (Kingma & Ba 2015; Loshchilov & Hutter 2019). Kept in
 * TypeScript: for the discriminator sizes trained here an update is a few milliseconds,
 * and the weights stay where checkpoints and ORT feeds read them.
 */
export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** decoupled weight decay (AdamW); 0 is plain Adam */
  weightDecay?: number;
}

export interface AdamState {
  step: number;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

export class Adam {
  readonly m = new Map<string, Float32Array>();
  readonly v = new Map<string, Float32Array>();
  stepCount = 0;

  constructor(
    readonly params: Map<string, Float32Array>,
    readonly opts: AdamOptions,
  ) {
    for (const [k, p] of params) {
      this.m.set(k, new Float32Array(p.length));
      this.v.set(k, new Float32Array(p.length));
    }
  }

  /** One update in place: θ ← θ - lr·(m̂/(sqrt(v̂)+ε) + wd·θ). */
  step(grads: Map<string, Float32Array>, lr = this.opts.lr): void {
    const b1 = this.opts.beta1 ?? 0.9;
    const b2 = this.opts.beta2 ?? 0.999;
    const eps = this.opts.eps ?? 1e-8;
    const wd = this.opts.weightDecay ?? 0;
    this.stepCount++;
    const c1 = 1 - b1 ** this.stepCount;
    const c2 = 1 - b2 ** this.stepCount;
    for (const [k, p] of this.params) {
      const g = grads.get(k);
      if (!g) throw new Error(`no gradient for parameter "${k}"`);
      const m = this.m.get(k)!;
      const v = this.v.get(k)!;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        const mi = (m[i] = b1 * m[i]! + (1 - b1) * gi);
        const vi = (v[i] = b2 * v[i]! + (1 - b2) * gi * gi);
        p[i] = p[i]! - lr * (mi / c1 / (Math.sqrt(vi / c2) + eps) + wd * p[i]!);
      }
    }
  }

  state(): AdamState {
    return { step: this.stepCount, m: Object.fromEntries(this.m), v: Object.fromEntries(this.v) };
  }

  load(s: AdamState): void {
    this.stepCount = s.step;
    for (const [k, arr] of Object.entries(s.m)) this.m.get(k)?.set(arr);
    for (const [k, arr] of Object.entries(s.v)) this.v.get(k)?.set(arr);
  }
}
