/**
 * Server mode: the same contract over HTTP + WebSocket on 127.0.0.1, so the renderer runs in
 * a plain browser. Every web page and process on the machine can reach it, so every request is
 * treated as hostile (docs/security.md):
 *
 * - the API needs the access token in a header (`X-DG-Token` or `Authorization: Bearer`), never
 *   a cookie alone; the event WebSocket needs it in its first message; both check `Origin`;
 * - the page and gallery files (GET) may use the HttpOnly cookie set by the `?token=` page load,
 *   but only for same-origin or direct navigations (`Sec-Fetch-Site`), so another site on
 *   127.0.0.1 cannot ride it;
 * - `Host` must name this server (DNS rebinding); bodies are JSON only; any parsing problem is a
 *   400 with a message, never a crash; every response carries the security headers.
 */
import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { ANNOTATOR_TOKEN_HEADER, type ServedBackend } from '../../shared/api.js';
import { annotatorRoutes } from './annotator-routes.js';
import {
  answer,
  cookieTokens,
  fetchSiteAllowed,
  headerToken,
  HttpError,
  readCall,
  rendererFile,
  safeDecode,
  sameSecret,
  SECURITY_HEADERS,
  send,
  sendText,
  serveFile,
} from './http.js';

/** Ports other studios use by default (A1111/Forge/SD.Next 7860, ComfyUI 8188, InvokeAI 9090, Fooocus 7865). */
export const OTHER_STUDIOS_PORTS = [7860, 7865, 8188, 9090];
export const DEFAULT_PORT = 6806;
export { HttpError, MAX_ARRAY_ITEMS, reviveBytes, SECURITY_HEADERS, TOKEN_HEADER } from './http.js';

const AUTH_TIMEOUT_MS = 5000;

/** What the server needs of the back end: calls, files by reference, events. */
export type { ServedBackend };

export interface ServerOptions {
  backend: ServedBackend;
  rendererDir: string;
  host?: string;
  port?: number;
  token?: string;
  /** where failed-authentication summaries go (serve: stderr) */
  onLog?: (line: string) => void;
}

/**
 * Failed authentications: counted per minute and logged as one summary line at most every 10 s; past
 * `max` in a minute, wrong-token requests get 429 instead of 401. A right token always passes — on a
 * loopback server every client shares one address, so blocking by address would let any local process
 * lock the user out, and a 192-bit token cannot be guessed anyway: the count is for the log.
 */
export class AuthFailures {
  private times: number[] = [];
  private unlogged = 0;
  private lastLog = 0;
  constructor(
    private readonly log: (line: string) => void,
    private readonly max = 60,
  ) {}

  /** Record a failure; true when the minute's count is past the limit (answer 429). */
  fail(what: string, now = Date.now()): boolean {
    this.times = this.times.filter((t) => now - t < 60_000);
    this.times.push(now);
    this.unlogged++;
    if (now - this.lastLog >= 10_000) {
      this.log(
        `${this.unlogged} request(s) with a missing or wrong access token since the last report (latest: ${what}; ${this.times.length} in the last minute)`,
      );
      this.unlogged = 0;
      this.lastLog = now;
    }
    return this.times.length > this.max;
  }
}

export interface StudioServer {
  server: Server;
  url: string;
  origin: string;
  token: string;
  close(): Promise<void>;
}

function contentSecurityPolicy(origin: string): string {
  const ws = origin.replace(/^http/, 'ws');
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    `connect-src 'self' ${ws}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** The Host values this server answers to (DNS rebinding: any other name is refused). */
export function allowedHosts(host: string, port: number): Set<string> {
  const names = new Set(['127.0.0.1', 'localhost', '[::1]']);
  if (host !== '0.0.0.0' && host !== '::') names.add(host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);
  return new Set([...names].map((n) => `${n}:${port}`));
}

/** What a request handler of this server knows. */
interface HandlerContext {
  backend: ServedBackend;
  root: string;
  origin: string;
  token: string;
  headers: Record<string, string>;
  checkSite(req: IncomingMessage): void;
  failures: AuthFailures;
  annotator: ReturnType<typeof annotatorRoutes>;
}

/** The routes: the API (owner or annotator token), the annotator's page and images, the owner's page and files. */
function requestHandler(ctx: HandlerContext) {
  const { backend, root, origin, token, headers, checkSite, failures, annotator } = ctx;
  return async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? '';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', origin);
    } catch {
      throw new HttpError(400, 'malformed request URL');
    }
    checkSite(req);
    const path = url.pathname;
    if (path.startsWith('/api/')) {
      if (method !== 'POST') return send(res, 405, { error: 'the API takes POST only' }, { ...headers, allow: 'POST' });
      const annotatorToken = req.headers[ANNOTATOR_TOKEN_HEADER];
      const given = headerToken(req);
      if (typeof annotatorToken === 'string' && !given) return annotator.call(req, res, annotatorToken, path.slice(5));
      if (!given || !sameSecret(given, token)) {
        if (failures.fail(`POST ${path.slice(0, 64)}`))
          return send(res, 429, { error: 'too many requests with a wrong access token' }, headers);
        return send(res, 401, { error: 'missing or wrong access token', restart: true }, headers);
      }
      const name = path.slice(5);
      const args = await readCall(req, name);
      return answer(res, headers, () => backend.dispatch(name, args));
    }
    if (method !== 'GET' && method !== 'HEAD') return sendText(res, 405, 'method not allowed', { ...headers, allow: 'GET, HEAD' });
    // an annotator link's page (?a=) and its blind images: the annotator's own cookie, never the owner's token
    // (also the page's own files when the request holds no owner credential but an annotator's cookie)
    const header = headerToken(req);
    const q = url.searchParams.get('token');
    const ownerCookies = cookieTokens(req);
    if (
      url.searchParams.has('a') ||
      (!header && path.startsWith('/files/blind/')) ||
      (header === null && q === null && ownerCookies.length === 0 && cookieTokens(req, 'dg_annot').length)
    )
      return annotator.get(req, res, url);
    // page and files: the cookie (set by the ?token= page load) or a header, same-origin only
    const given = header ?? q;
    const ok = given !== null ? sameSecret(given, token) : ownerCookies.some((c) => sameSecret(c, token));
    if (!ok || !fetchSiteAllowed(req)) {
      if (!ok && failures.fail(`GET ${path.slice(0, 64)}`))
        return sendText(res, 429, 'DG Studio server: too many requests with a wrong access token', headers);
      return sendText(res, 401, 'DG Studio server: missing or wrong access token (open the URL printed at start)', headers);
    }
    const cookie: Record<string, string> = q
      ? { 'set-cookie': `dg_token=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/` }
      : {};
    if (path === '/session') return send(res, 200, { token }, { ...headers, ...cookie });
    if (path.startsWith('/files/')) {
      const parts = path.split('/');
      if (parts.length !== 4) return sendText(res, 404, 'not found', headers);
      const file = await backend.resolveFile(safeDecode(parts[2]!, 'path'), safeDecode(parts[3]!, 'path'));
      return serveFile(res, file, headers, true);
    }
    // the built renderer; nothing outside its folder (resolved, links followed)
    return serveFile(res, rendererFile(root, path), { ...headers, ...cookie });
  };
}

/** The event WebSocket (/events): nothing is sent before the first message carries the owner's token. */
function attachEvents(
  server: Server,
  ctx: { origin: string; token: string; backend: ServedBackend; checkSite(req: IncomingMessage): void },
): WebSocketServer {
  const { origin, token, checkSite } = ctx;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const refuse = (status: string) => {
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      else socket.destroy();
    };
    try {
      const url = new URL(req.url ?? '/', origin);
      checkSite(req);
      if (url.pathname !== '/events') return refuse('404 Not Found');
    } catch (e) {
      return refuse(e instanceof HttpError && e.status === 421 ? '421 Misdirected Request' : '403 Forbidden');
    }
    socket.on('error', () => socket.destroy());
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      // the token comes in the first message: {"token": "…"}; nothing is sent before it
      let off: (() => void) | null = null;
      const timer = setTimeout(() => ws.close(4401, 'no access token'), AUTH_TIMEOUT_MS);
      ws.on('error', () => ws.terminate());
      ws.once('message', (data, isBinary) => {
        clearTimeout(timer);
        let given: unknown;
        try {
          given = isBinary ? null : (JSON.parse(String(data)) as { token?: unknown }).token;
        } catch {
          given = null;
        }
        if (typeof given !== 'string' || !sameSecret(given, token)) return ws.close(4401, 'missing or wrong access token');
        off = ctx.backend.onEvent((e) => ws.send(JSON.stringify(e)));
        ws.send(JSON.stringify({ authenticated: true }));
      });
      ws.on('close', () => {
        clearTimeout(timer);
        off?.();
      });
    });
  });
  return wss;
}

export async function startServer(opts: ServerOptions): Promise<StudioServer> {
  const token = opts.token ?? randomBytes(24).toString('hex');
  if (token.length < 16 || !/^[\x21-\x7e]+$/.test(token)) throw new Error('the access token must be at least 16 printable characters');
  const host = opts.host ?? '127.0.0.1';
  const root = realpathSync(resolve(opts.rendererDir));
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? DEFAULT_PORT, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? DEFAULT_PORT);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const origin = `http://${urlHost}:${port}`;
  const hosts = allowedHosts(host, port);
  const origins = new Set([...hosts].map((h) => `http://${h}`));
  const headers = { ...SECURITY_HEADERS, 'content-security-policy': contentSecurityPolicy(origin) };

  /** Origin, if sent, must be this server's; Host must name it. */
  const checkSite = (req: IncomingMessage) => {
    const h = String(req.headers.host ?? '').toLowerCase();
    if (!hosts.has(h)) throw new HttpError(421, `this server answers to ${[...hosts][0]} only (Host "${h.slice(0, 80)}" refused)`);
    const o = req.headers.origin;
    if (o !== undefined && !origins.has(String(o).toLowerCase())) throw new HttpError(403, 'requests from other sites are refused');
  };

  const failures = new AuthFailures(opts.onLog ?? (() => {}));
  const annotator = annotatorRoutes({ backend: opts.backend, failures, headers, root });
  const handle = requestHandler({ ...opts, root, origin, token, headers, checkSite, failures, annotator });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      const message = e instanceof HttpError ? e.message : 'internal error';
      if (!(e instanceof HttpError)) console.error(`server: ${(e as Error)?.stack ?? e}`);
      send(res, status, { error: message }, headers);
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  const wss = attachEvents(server, { origin, checkSite, token, backend: opts.backend });
  return {
    server,
    token,
    origin,
    url: `${origin}/?token=${token}`,
    close: () =>
      new Promise<void>((r) => {
        wss.clients.forEach((c) => c.terminate());
        wss.close();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
