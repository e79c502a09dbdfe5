/**
 * The back end in a child process for server mode (what Electron runs as a utility process), so
 * a long job never delays an HTTP request: calls go over the IPC channel, files are resolved by
 * the child, events come back. If the child dies, pending calls fail with a clear message and a
 * new child is started for the next ones.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import type { StudioEvent } from '../../shared/api.js';
import { BackendClient } from './client.js';
import type { ServedBackend } from '../../shared/api.js';

export interface BackendProcessOptions {
  dataDir?: string | undefined;
  mode?: 'server' | 'electron';
  /** more folders an output folder may lie in */
  allowedRoots?: string[] | undefined;
  onLog?(line: string): void;
}

export interface BackendProcess extends ServedBackend {
  /** the current child's pid (tests kill it to check the restart) */
  readonly pid: number | undefined;
  close(): Promise<void>;
}

/** The host script: the built one beside this bundle, else the source (run through tsx). */
function hostScript(): { script: string; execArgv: string[] } {
  // built: out/main/backend-host.js, beside this bundle or one folder up from a shared chunk
  const built = ['.', '..'].map((d) => join(import.meta.dirname, d, 'backend-host.js')).find((f) => existsSync(f));
  if (built) return { script: built, execArgv: [] };
  return { script: join(import.meta.dirname, 'host.ts'), execArgv: ['--import', 'tsx'] };
}

export async function startBackendProcess(opts: BackendProcessOptions = {}): Promise<BackendProcess> {
  const listeners = new Set<(e: StudioEvent) => void>();
  let child: ChildProcess;
  let client: BackendClient;
  let closing = false;
  const spawn = async () => {
    const { script, execArgv } = hostScript();
    child = fork(script, [], {
      execArgv,
      serialization: 'advanced',
      env: {
        ...process.env,
        DG_STUDIO_MODE: opts.mode ?? 'server',
        ...(opts.dataDir ? { DG_STUDIO_DATA: opts.dataDir } : {}),
        ...(opts.allowedRoots?.length ? { DG_STUDIO_ROOTS: opts.allowedRoots.map((r) => resolve(r)).join(delimiter) } : {}),
      },
    });
    const c = new BackendClient({ postMessage: (m) => child.send(m as object), onMessage: (l) => child.on('message', l) });
    client = c;
    c.onEvent((e) => listeners.forEach((l) => l(e)));
    const started = child;
    started.on('exit', (code, signal) => {
      c.failAll(
        `the engine process stopped (${signal ?? `exit code ${code}`}) while this call was running; it has been restarted — try again`,
      );
      if (!closing && client === c) {
        opts.onLog?.(`engine process stopped (${signal ?? `exit code ${code}`}); restarting it`);
        void spawn();
      }
    });
    await Promise.race([
      c.ready,
      new Promise((_, fail) => started.once('exit', (code) => fail(new Error(`the engine process could not start (exit code ${code})`)))),
    ]);
  };
  await spawn();
  return {
    get pid() {
      return child.pid;
    },
    async dispatch(method, args) {
      await client.ready;
      return client.call(method, args);
    },
    async resolveFile(kind, name) {
      await client.ready;
      return (await client.call('$resolveFile', [kind, name])) as string | null;
    },
    async dispatchAnnotator(token, method, args) {
      await client.ready;
      return client.call('$annotator', [token, method, args]);
    },
    async resolveAnnotatorFile(token, name) {
      await client.ready;
      return (await client.call('$resolveAnnotatorFile', [token, name])) as string | null;
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closing = true;
      const c = child;
      if (c.exitCode === null && c.signalCode === null) {
        await new Promise<void>((r) => {
          c.once('exit', () => r());
          c.kill('SIGTERM');
          setTimeout(() => c.kill('SIGKILL'), 5000).unref();
        });
      }
    },
  };
}
