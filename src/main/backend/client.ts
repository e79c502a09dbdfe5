/**
 * The other end of backend-host: calls and events over a message port (an Electron
 * utilityProcess or a forked Node process).
 */
import type { StudioEvent } from '../../shared/api.js';

export interface MessagePortLike {
  postMessage(message: unknown): void;
  onMessage(listener: (message: unknown) => void): void;
}

export class BackendClient {
  private next = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly listeners = new Set<(e: StudioEvent) => void>();
  readonly ready: Promise<void>;

  constructor(private readonly port: MessagePortLike) {
    let markReady!: () => void;
    this.ready = new Promise((r) => (markReady = r));
    port.onMessage((raw) => {
      const m = raw as {
        id?: number;
        result?: unknown;
        error?: string;
        errorName?: string;
        status?: number;
        event?: StudioEvent;
        ready?: boolean;
      };
      if (m.ready) markReady();
      else if (m.event) this.listeners.forEach((l) => l(m.event!));
      else if (m.id !== undefined) {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error !== undefined)
          p?.reject(Object.assign(new Error(m.error), m.errorName ? { name: m.errorName } : {}, m.status ? { status: m.status } : {}));
        else p?.resolve(m.result);
      }
    });
  }

  call(method: string, args: unknown[]): Promise<unknown> {
    if (this.closedReason !== null) return Promise.reject(new Error(this.closedReason));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.port.postMessage({ id, method, args });
    });
  }

  onEvent(listener: (e: StudioEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private closedReason: string | null = null;

  /** Fail every call still waiting (the host died); with `closed`, every later call too. */
  failAll(reason: string, closed = false): void {
    if (closed) this.closedReason = reason;
    for (const p of this.pending.values()) p.reject(new Error(reason));
    this.pending.clear();
  }
}
