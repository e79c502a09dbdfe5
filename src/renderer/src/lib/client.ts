/**
 * The renderer's one way to the back end: Electron's preload bridge when present, else the
 * server mode's HTTP + WebSocket API. The rest of the UI cannot tell which.
 */
import type { ApiMethod, StudioBridge, StudioEvent } from '../../../shared/api';
import { METHODS } from '../../../shared/channels';

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function httpBridge(): StudioBridge {
  const call = async (method: ApiMethod, args: unknown[]) => {
    const body = JSON.stringify(args, (_k, v) => (v instanceof Uint8Array ? { $bytes: toBase64(v) } : v));
    const res = await fetch(`/api/${method}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      credentials: 'same-origin',
    });
    const json = (await res.json().catch(() => ({ error: `the server answered ${res.status}` }))) as { result?: unknown; error?: string };
    if (!res.ok || json.error) throw new Error(json.error ?? `the server answered ${res.status}`);
    return json.result;
  };
  const api = Object.fromEntries(METHODS.map((m) => [m, (...args: unknown[]) => call(m, args)])) as unknown as StudioBridge;
  const listeners = new Set<(e: StudioEvent) => void>();
  let socket: WebSocket | null = null;
  const connect = () => {
    socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/events`);
    socket.onmessage = (m) => listeners.forEach((l) => l(JSON.parse(m.data as string) as StudioEvent));
    socket.onclose = () => setTimeout(connect, 1000);
  };
  api.onEvent = (l) => {
    listeners.add(l);
    if (!socket) connect();
    return () => listeners.delete(l);
  };
  return api;
}

export const api: StudioBridge = window.dgStudio ?? httpBridge();

/** URL of a back-end file reference such as "thumb/<sha>". */
export function fileUrl(ref: string | null): string {
  if (!ref) return '';
  return window.dgStudio ? `dg-files://${ref}` : `/files/${ref}`;
}
