/**
 * The renderer's one way to the back end: Electron's preload bridge when present, else the
 * server mode's HTTP + WebSocket API. The rest of the UI cannot tell which.
 */
import {
  ANNOTATOR_TOKEN_HEADER,
  annotatorApiOverTransport,
  apiOverTransport,
  type AnnotatorApi,
  type ApiMethod,
  type StudioBridge,
  type StudioEvent,
} from '../../../shared/api';

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

const TOKEN_KEY = 'dg-studio-token';

/**
 * The server's access token: from the `?token=` of the printed URL (then removed from the address
 * bar, so it is not bookmarked or shared by accident), else this tab's copy, else the server's
 * /session (answered to same-origin pages holding the cookie of an earlier visit).
 */
async function accessToken(): Promise<string | null> {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    params.delete('token');
    history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}${location.hash}`);
    return fromUrl;
  }
  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (stored) return stored;
  const res = await fetch('/session', { credentials: 'same-origin' }).catch(() => null);
  if (res?.ok) {
    const t = ((await res.json()) as { token?: string }).token ?? null;
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    return t;
  }
  return null;
}

/** After a server restart with a new token: ask for it once, in words, instead of failing forever. */
function askForToken(): string | null {
  const t = window.prompt('The DG Studio server was restarted or its access token changed. Paste the token (or the whole URL) it printed:');
  if (!t) return null;
  const m = /[?&]token=([^&\s]+)/.exec(t);
  const token = (m ? decodeURIComponent(m[1]!) : t).trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  return token;
}

function httpBridge(): StudioBridge {
  let token: Promise<string | null> = accessToken();
  const call = async (method: ApiMethod, args: unknown[], retried = false): Promise<unknown> => {
    const body = JSON.stringify(args, (_k, v) => (v instanceof Uint8Array ? { $bytes: toBase64(v) } : v));
    const res = await fetch(`/api/${method}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-dg-token': (await token) ?? '' },
      credentials: 'same-origin',
    });
    if (res.status === 401 && !retried) {
      const fresh = askForToken();
      if (fresh) {
        token = Promise.resolve(fresh);
        return call(method, args, true);
      }
      throw new Error('the server restarted with a new access token: open the URL it printed (or reload and paste the token)');
    }
    const json = (await res.json().catch(() => ({ error: `the server answered ${res.status}` }))) as { result?: unknown; error?: string };
    if (!res.ok || json.error) throw new Error(json.error ?? `the server answered ${res.status}`);
    return json.result;
  };
  const listeners = new Set<(e: StudioEvent) => void>();
  let socket: WebSocket | null = null;
  const connect = () => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/events`);
    socket = ws;
    // the token goes in the first message (never in the URL or a cookie)
    ws.onopen = () => void token.then((t) => ws.send(JSON.stringify({ token: t ?? '' })));
    ws.onmessage = (m) => {
      const data = JSON.parse(m.data as string) as StudioEvent | { authenticated: true };
      if (!('authenticated' in data)) listeners.forEach((l) => l(data));
    };
    ws.onclose = (e) => setTimeout(connect, e.code === 4401 ? 5000 : 1000);
  };
  return {
    ...apiOverTransport((method, args) => call(method, args)),
    onEvent(l) {
      listeners.add(l);
      if (!socket) connect();
      return () => listeners.delete(l);
    },
  };
}

/**
 * An annotator link's token (server mode, `/?a=…`): the page then opens in annotator mode and never asks for
 * the owner's token. It stays in the address bar, so a reload keeps working; it is the annotator's own.
 */
export const annotatorToken: string | null = window.dgStudio ? null : new URLSearchParams(location.search).get('a');

/** The annotator page's back end: ANNOTATOR_API over HTTP with the link's token. */
export function annotatorBridge(token: string): AnnotatorApi {
  return annotatorApiOverTransport(async (method, args) => {
    const res = await fetch(`/api/${method}`, {
      method: 'POST',
      body: JSON.stringify(args),
      headers: { 'content-type': 'application/json', [ANNOTATOR_TOKEN_HEADER]: token },
      credentials: 'same-origin',
    });
    const json = (await res.json().catch(() => ({ error: `the server answered ${res.status}` }))) as { result?: unknown; error?: string };
    if (!res.ok || json.error) throw new Error(json.error ?? `the server answered ${res.status}`);
    return json.result;
  });
}

/** On an annotator's page the owner's API does not exist (and its token is never asked for). */
function noOwnerApi(): StudioBridge {
  return {
    ...apiOverTransport(() => Promise.reject(new Error('an annotator link opens its study only'))),
    onEvent: () => () => undefined,
  };
}

export const api: StudioBridge = window.dgStudio ?? (annotatorToken ? noOwnerApi() : httpBridge());

/** URL of a back-end file reference such as "thumb/<sha>". */
export function fileUrl(ref: string | null): string {
  if (!ref) return '';
  return window.dgStudio ? `dg-files://${ref}` : `/files/${ref}`;
}
