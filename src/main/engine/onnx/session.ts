/**
 * ONNX Runtime sessions with an execution-provider choice. CPU is the default and the
 * fallback; CUDA / DirectML / CoreML / WebGPU are tried when asked for, and a failure to
 * start one falls back to CPU with a message saying why.
 */
import * as ort from 'onnxruntime-node';

export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'dml', 'coreml', 'webgpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

export interface SessionOptions {
  executionProvider?: ExecutionProvider | undefined;
  /** intra-op threads; 0 or undefined lets ORT choose (all cores) */
  threads?: number | undefined;
  /** called with a human-readable line when the requested provider is unavailable */
  onWarning?: ((message: string) => void) | undefined;
  /**
   * false: ORT allocates a run's tensors from its arena as they are needed instead of in the one block
   * its memory pattern plans after the first run. For training graphs: the width-32 U-Net's training
   * step (batch 32) peaked at 2.2 GB instead of 3.8–4.2 GB at the same speed (2026-11-29).
   */
  memoryPattern?: boolean | undefined;
}

export interface OrtSession {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
  source: string;
}

/**
 * Whether ORT's worker threads spin (busy-wait) after a run, waiting for the next: ORT's default,
 * good for one session run back to back, but a guided sampler alternates two sessions (the score
 * model, then the guidance graph) and each one's spinning threads steal the cores from the other
 * (bench/dg-end-to-end.ts). Off unless DG_STUDIO_ORT_SPINNING=1.
 */
export function ortSpinning(): boolean {
  return process.env['DG_STUDIO_ORT_SPINNING'] === '1';
}

export async function createSession(model: string | Uint8Array, source: string, opts: SessionOptions = {}): Promise<OrtSession> {
  const wanted = opts.executionProvider ?? 'cpu';
  const spin = ortSpinning() ? '1' : '0';
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3, // errors only: ORT's warnings (unused initializers, …) are not the user's business
    ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    ...(opts.memoryPattern === false ? { enableMemPattern: false } : {}),
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
  const create = (ep: ExecutionProvider) =>
    typeof model === 'string'
      ? ort.InferenceSession.create(model, { ...base, executionProviders: [ep] })
      : ort.InferenceSession.create(model, { ...base, executionProviders: [ep] });
  if (wanted !== 'cpu') {
    try {
      return { session: await create(wanted), provider: wanted, source };
    } catch (e) {
      opts.onWarning?.(
        `execution provider "${wanted}" is not available for "${source}" (${firstLine(e)}); running on CPU instead. ` +
          (wanted === 'cuda' ? 'See the README for installing ONNX Runtime with CUDA.' : ''),
      );
    }
  }
  try {
    return { session: await create('cpu'), provider: 'cpu', source };
  } catch (e) {
    throw new Error(`cannot load ONNX model "${source}": ${firstLine(e)}`, { cause: e });
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0]!;
}

export function tensorMetadata(s: OrtSession, kind: 'input' | 'output', name: string) {
  const list = kind === 'input' ? s.session.inputMetadata : s.session.outputMetadata;
  const names = kind === 'input' ? s.session.inputNames : s.session.outputNames;
  const meta = list.find((m) => m.name === name);
  if (!meta) {
    throw new Error(`ONNX model "${s.source}" has no ${kind} named "${name}"; its ${kind}s are: ${names.join(', ')}`);
  }
  if (!meta.isTensor) throw new Error(`ONNX model "${s.source}": ${kind} "${name}" is not a tensor`);
  return meta;
}

export function expectDType(s: OrtSession, kind: 'input' | 'output', name: string, allowed: readonly string[]): string {
  const meta = tensorMetadata(s, kind, name);
  if (!meta.isTensor || !allowed.includes(meta.type)) {
    throw new Error(
      `ONNX model "${s.source}": ${kind} "${name}" has type ${meta.isTensor ? meta.type : 'non-tensor'}, expected ${allowed.join(' or ')}`,
    );
  }
  return meta.type;
}

export { ort };
