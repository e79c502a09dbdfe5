/**
 * Runs the back end in its own process, so long work (sampling, training, sweeps) never
 * blocks the window: Electron starts it as a utilityProcess; Node can fork it (tests, tools).
 * Messages: {id, method, args} → {id, result} | {id, error}; events go out as {event}.
 */
import { delimiter } from 'node:path';
import { StudioBackend } from './backend.js';

interface Port {
  post(message: unknown): void;
  onMessage(listener: (message: unknown) => void): void;
}

function parentPort(): Port {
  const electron = (
    process as unknown as { parentPort?: { postMessage(m: unknown): void; on(e: 'message', cb: (e: { data: unknown }) => void): void } }
  ).parentPort;
  if (electron) return { post: (m) => electron.postMessage(m), onMessage: (l) => electron.on('message', (e) => l(e.data)) };
  if (process.send) return { post: (m) => process.send!(m), onMessage: (l) => process.on('message', l) };
  throw new Error('backend-host must run as an Electron utility process or a forked Node process');
}

const port = parentPort();
const backend = await StudioBackend.create({
  mode: process.env['DG_STUDIO_MODE'] === 'server' ? 'server' : 'electron',
  dataDir: process.env['DG_STUDIO_DATA'] || undefined,
  allowedRoots: (process.env['DG_STUDIO_ROOTS'] ?? '').split(delimiter).filter(Boolean),
});
backend.onEvent((event) => port.post({ event }));
port.onMessage((m) => {
  const { id, method, args } = m as { id: number; method: string; args: unknown[] };
  void (async () => {
    try {
      const result =
        method === '$resolveFile'
          ? backend.resolveFile(String(args[0]), String(args[1]))
          : method === '$annotator'
            ? await backend.dispatchAnnotator(String(args[0]), String(args[1]), args[2] as unknown[])
            : method === '$resolveAnnotatorFile'
              ? backend.resolveAnnotatorFile(String(args[0]), String(args[1]))
              : await backend.dispatch(method, args);
      port.post({ id, result: result ?? null });
    } catch (e) {
      const err = e as Error & { status?: number };
      port.post({ id, error: err.message, errorName: err.name, status: err.status });
    }
  })();
});
port.post({ ready: true });
process.once('SIGTERM', () => {
  void backend.close().finally(() => process.exit(0));
});
