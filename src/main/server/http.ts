/**
 * The HTTP plumbing of server mode (server.ts): hostile-input-proof request reading, the credentials a request
 * carries, answers and files. Nothing here knows the studio's API; server.ts and annotator-routes.ts route.
 */
import { timingSafeEqual } from 'node:crypto';
import { createReadStream, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, isAbsolute, relative, resolve } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.zip': 'application/zip',
};
export const TOKEN_HEADER = 'x-dg-token';
export const MAX_BODY = 200 * 1024 * 1024;

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

export function sameSecret(a: string, b: string): boolean {
  const [x, y] = [Buffer.from(a), Buffer.from(b)];
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Every value of the studio's cookie in a request. Cookies are not scoped by port, so a page on another local
 * port can toss a second `dg_token` (e.g. `path=/files`, which the browser sends first): the token counts if
 * any of them matches, so a tossed cookie cannot lock the user out of the gallery's images.
 */
export function cookieTokens(req: IncomingMessage, name = 'dg_token'): string[] {
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

export function headerToken(req: IncomingMessage): string | null {
  const h = req.headers[TOKEN_HEADER];
  if (typeof h === 'string' && h) return h;
  const auth = req.headers.authorization;
  return typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : null;
}

/** Sec-Fetch-Site of a browser request: same-origin pages and direct navigations only. */
export function fetchSiteAllowed(req: IncomingMessage): boolean {
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

export function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
  res.end(JSON.stringify(body));
}

export function sendText(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
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

export async function readBody(req: IncomingMessage): Promise<string> {
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

export function serveFile(res: ServerResponse, path: string | null, headers: Record<string, string>, cache = false): void {
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

/** The checked JSON arguments of an API call (same-origin, JSON, a method-like name, an array). */
export async function readCall(req: IncomingMessage, name: string): Promise<unknown[]> {
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
}

/** The back end's answer, or its error with the status it names (400 for a refused payload, 500 else). */
export async function answer(res: ServerResponse, headers: Record<string, string>, call: () => Promise<unknown>): Promise<void> {
  try {
    return send(res, 200, { result: (await call()) ?? null }, headers);
  } catch (e) {
    const err = e as Error & { status?: number };
    const status = err.status ?? (err.name === 'PayloadError' ? 400 : /^unknown method/i.test(err.message) ? 404 : 500);
    return send(res, status, { error: err.message }, headers);
  }
}

/** A file of the built renderer for a URL path ('/' is index.html), or null when it lies outside its folder. */
export function rendererFile(root: string, path: string): string | null {
  const rel = path === '/' ? 'index.html' : safeDecode(path.slice(1), 'path');
  if (rel.includes('\0')) throw new HttpError(400, 'a NUL byte in the path');
  return insideRoot(root, rel);
}
