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
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, isAbsolute, relative, resolve } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { ANNOTATOR_TOKEN_HEADER, type ServedBackend } from '../../shared/api.js';

/** Ports other studios use by default (A1111/Forge/SD.Next 7860, ComfyUI 8188, InvokeAI 9090, Fooocus 7865). */
export const OTHER_STUDIOS_PORTS = [7860, 7865, 8188, 9090];
export const DEFAULT_PORT = 6806;
export const TOKEN_HEADER = 'x-dg-token';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};
const MAX_BODY = 200 * 1024 * 1024;
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

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** decodeURIComponent that says "bad request" instead of throwing URIError. */
export function safeDecode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, `malformed percent-encoding in the ${what}`);
  }
}

function sameSecret(a: string, b: string): boolean {
  const [x, y] = [Buffer.from(a), Buffer.from(b)];
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Every value of the studio's cookie in a request. Cookies are not scoped by port, so a page on another local
 * port can toss a second `dg_token` (e.g. `path=/files`, which the browser sends first): the token counts if
 * any of them matches, so a tossed cookie cannot lock the user out of the gallery's images.
 */
function cookieTokens(req: IncomingMessage, name = 'dg_token'): string[] {
  const out: string[] = [];
  for (const m of String(req.headers.cookie ?? '').matchAll(new RegExp(`(?:^|;\\s*)${name}=([^;]*)`, 'g'))) {
    try {
      out.push(decodeURIComponent(m[1]!));
    } catch {
      // a malformed cookie is no cookie
    }
  }
  return out;
}

function headerToken(req: IncomingMessage): string | null {
  const h = req.headers[TOKEN_HEADER];
  if (typeof h === 'string' && h) return h;
  const auth = req.headers.authorization;
  return typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : null;
}

/** Sec-Fetch-Site of a browser request: same-origin pages and direct navigations only. */
function fetchSiteAllowed(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  return site === undefined || site === 'same-origin' || site === 'none';
}

export const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

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

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
  res.end(JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...extra });
  res.end(text);
}

/** The longest array a request may hold anywhere (the API's own limits are lower; this one is checked while
 * parsing, before the engine sees the request, so a hostile 5-million-id body costs the engine nothing). */
export const MAX_ARRAY_ITEMS = 100_000;

/** JSON with Uint8Array as {"$bytes": base64} both ways (uploads); arrays no longer than MAX_ARRAY_ITEMS. */
export function reviveBytes(_k: string, v: unknown): unknown {
  if (Array.isArray(v) && v.length > MAX_ARRAY_ITEMS)
    throw new HttpError(413, `a list in the request has ${v.length} items; at most ${MAX_ARRAY_ITEMS} are taken`);
  if (v && typeof v === 'object' && '$bytes' in v) {
    const b = (v as { $bytes: unknown }).$bytes;
    if (typeof b !== 'string') throw new HttpError(400, '"$bytes" must be a base64 string');
    return new Uint8Array(Buffer.from(b, 'base64'));
  }
  return v;
}

/** Bytes of request bodies held at once, over all requests: concurrent large uploads wait their turn (503). */
const MAX_BODIES_IN_FLIGHT = 2 * MAX_BODY;
let bodiesInFlight = 0;

async function readBody(req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY) throw new HttpError(413, `request too large (over ${MAX_BODY / 2 ** 20} MiB)`);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of req) {
      const n = (c as Buffer).length;
      size += n;
      if (size > MAX_BODY) throw new HttpError(413, `request too large (over ${MAX_BODY / 2 ** 20} MiB)`);
      if (bodiesInFlight + n > MAX_BODIES_IN_FLIGHT)
        throw new HttpError(503, 'the server is receiving other large requests; send this one again in a moment');
      bodiesInFlight += n;
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    bodiesInFlight -= chunks.reduce((a, c) => a + c.length, 0);
  }
}

/** A file strictly inside `root` (after resolving links), or null. */
export function insideRoot(root: string, rel: string): string | null {
  const candidate = resolve(root, rel);
  let real: string;
  try {
    real = realpathSync(candidate);
  } catch {
    return null;
  }
  const r = relative(root, real);
  if (r === '' || r.startsWith('..') || isAbsolute(r)) return null;
  return real;
}

function serveFile(res: ServerResponse, path: string | null, headers: Record<string, string>, cache = false): void {
  let ok: boolean;
  try {
    ok = !!path && statSync(path).isFile();
  } catch {
    ok = false;
  }
  if (!ok) return sendText(res, 404, 'not found', headers);
  res.writeHead(200, {
    ...headers,
    'content-type': TYPES[extname(path!)] ?? 'application/octet-stream',
    'cache-control': cache ? 'private, max-age=31536000, immutable' : 'no-cache',
  });
  const stream = createReadStream(path!);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}

/** The Host values this server answers to (DNS rebinding: any other name is refused). */
export function allowedHosts(host: string, port: number): Set<string> {
  const names = new Set(['127.0.0.1', 'localhost', '[::1]']);
  if (host !== '0.0.0.0' && host !== '::') names.add(host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);
  return new Set([...names].map((n) => `${n}:${port}`));
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
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
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
      const annotator = req.headers[ANNOTATOR_TOKEN_HEADER];
      const given = headerToken(req);
      if (typeof annotator === 'string' && !given) return annotatorCall(req, res, annotator, path.slice(5));
      if (!given || !sameSecret(given, token)) {
        if (failures.fail(`POST ${path.slice(0, 64)}`))
          return send(res, 429, { error: 'too many requests with a wrong access token' }, headers);
        return send(res, 401, { error: 'missing or wrong access token', restart: true }, headers);
      }
      const name = path.slice(5);
      const args = await readCall(req, name);
      return answer(res, () => opts.backend.dispatch(name, args));
    }
    if (method !== 'GET' && method !== 'HEAD') return sendText(res, 405, 'method not allowed', { ...headers, allow: 'GET, HEAD' });
    // an annotator link's page (?a=) and its blind images: the annotator's own cookie, never the owner's token
    // (also the page's own files when the request holds no owner credential but an annotator's cookie)
    const ownerCredential = headerToken(req) !== null || url.searchParams.has('token') || cookieTokens(req).length > 0;
    if (
      url.searchParams.has('a') ||
      (!headerToken(req) && path.startsWith('/files/blind/')) ||
      (!ownerCredential && cookieTokens(req, 'dg_annot').length)
    )
      return annotatorGet(req, res, url);
    // page and files: the cookie (set by the ?token= page load) or a header, same-origin only
    const q = url.searchParams.get('token');
    const given = headerToken(req) ?? q;
    const ok = given !== null ? sameSecret(given, token) : cookieTokens(req).some((c) => sameSecret(c, token));
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
      const file = await opts.backend.resolveFile(safeDecode(parts[2]!, 'path'), safeDecode(parts[3]!, 'path'));
      return serveFile(res, file, headers, true);
    }
    // the built renderer; nothing outside its folder (resolved, links followed)
    const rel = path === '/' ? 'index.html' : safeDecode(path.slice(1), 'path');
    if (rel.includes('\0')) throw new HttpError(400, 'a NUL byte in the path');
    return serveFile(res, insideRoot(root, rel), { ...headers, ...cookie });
  };

  /** The checked JSON arguments of an API call (same-origin, JSON, a method-like name, an array). */
  const readCall = async (req: IncomingMessage, name: string): Promise<unknown[]> => {
    if (!fetchSiteAllowed(req)) throw new HttpError(403, 'requests from other sites are refused');
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== 'application/json') throw new HttpError(415, 'the body must be JSON (Content-Type: application/json)');
    if (!/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(name)) throw new HttpError(404, 'no such API method');
    let args: unknown;
    try {
      args = JSON.parse(await readBody(req), reviveBytes) as unknown;
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(400, `the body is not valid JSON (${(e as Error).message.slice(0, 120)})`);
    }
    if (!Array.isArray(args)) throw new HttpError(400, 'the body must be a JSON array of arguments');
    return args;
  };

  /** The back end's answer, or its error with the status it names (400 for a refused payload, 500 else). */
  const answer = async (res: ServerResponse, call: () => Promise<unknown>) => {
    try {
      return send(res, 200, { result: (await call()) ?? null }, headers);
    } catch (e) {
      const err = e as Error & { status?: number };
      const status = err.status ?? (err.name === 'PayloadError' ? 400 : /^unknown method/i.test(err.message) ? 404 : 500);
      return send(res, status, { error: err.message }, headers);
    }
  };

  /** A call with an annotator link's token: ANNOTATOR_API only (the back end binds it to the link's study). */
  const annotatorCall = async (req: IncomingMessage, res: ServerResponse, given: string, name: string) => {
    const args = await readCall(req, name);
    try {
      return send(res, 200, { result: (await opts.backend.dispatchAnnotator(given, name, args)) ?? null }, headers);
    } catch (e) {
      const err = e as Error & { status?: number };
      if (err.status === 401 && failures.fail(`annotator POST ${name.slice(0, 64)}`))
        return send(res, 429, { error: 'too many requests with a wrong access token' }, headers);
      return answer(res, () => Promise.reject(err));
    }
  };

  /** The first of the request's annotator tokens (query, header, cookies) that names a live link, or null. */
  const liveAnnotatorToken = async (req: IncomingMessage, url: URL): Promise<string | null> => {
    const header = req.headers[ANNOTATOR_TOKEN_HEADER];
    const candidates = [url.searchParams.get('a'), typeof header === 'string' ? header : null, ...cookieTokens(req, 'dg_annot')];
    for (const c of candidates) {
      if (!c) continue;
      try {
        await opts.backend.dispatchAnnotator(c, 'annotatorStudy', []);
        return c;
      } catch {
        // not a live link: try the next
      }
    }
    return null;
  };

  /** GET with an annotator link: the studio's page (which opens in annotator mode) and that link's blind images. */
  const annotatorGet = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const given = await liveAnnotatorToken(req, url);
    if (!given || !fetchSiteAllowed(req)) {
      if (!given && failures.fail(`annotator GET ${url.pathname.slice(0, 64)}`))
        return sendText(res, 429, 'DG Studio server: too many requests with a wrong access token', headers);
      return sendText(
        res,
        401,
        "DG Studio server: this annotator link is unknown or was revoked; ask the study's owner for a new one",
        headers,
      );
    }
    const path = url.pathname;
    if (path.startsWith('/files/')) {
      const parts = path.split('/');
      const file =
        parts.length === 4 && parts[2] === 'blind' ? await opts.backend.resolveAnnotatorFile(given, safeDecode(parts[3]!, 'path')) : null;
      return serveFile(res, file, headers, true);
    }
    if (path === '/session') return sendText(res, 403, 'an annotator link opens its study only', headers);
    const cookie: Record<string, string> = url.searchParams.has('a')
      ? { 'set-cookie': `dg_annot=${encodeURIComponent(given)}; HttpOnly; SameSite=Strict; Path=/` }
      : {};
    const rel = path === '/' ? 'index.html' : safeDecode(path.slice(1), 'path');
    if (rel.includes('\0')) throw new HttpError(400, 'a NUL byte in the path');
    return serveFile(res, insideRoot(root, rel), { ...headers, ...cookie });
  };

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
        off = opts.backend.onEvent((e) => ws.send(JSON.stringify(e)));
        ws.send(JSON.stringify({ authenticated: true }));
      });
      ws.on('close', () => {
        clearTimeout(timer);
        off?.();
      });
    });
  });
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
