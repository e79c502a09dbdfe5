/**
 * Server mode: the same contract over HTTP + WebSocket on 127.0.0.1, so the renderer runs in
 * a plain browser (a lab GPU box, a shared workstation). Every request needs the random
 * access token printed at start: as `?token=` on the first page load (which sets an
 * HttpOnly cookie), as the cookie, or as `Authorization: Bearer`.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { WebSocketServer } from 'ws';
import type { StudioBackend } from './backend.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
};
const MAX_BODY = 200 * 1024 * 1024;

export interface ServerOptions {
  backend: StudioBackend;
  rendererDir: string;
  host?: string;
  port?: number;
  token?: string;
}

export interface StudioServer {
  server: Server;
  url: string;
  token: string;
  close(): Promise<void>;
}

function tokenOf(req: IncomingMessage, url: URL): string | null {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7);
  const q = url.searchParams.get('token');
  if (q) return q;
  const cookie = /(?:^|;\s*)dg_token=([^;]+)/.exec(req.headers.cookie ?? '');
  return cookie ? decodeURIComponent(cookie[1]!) : null;
}

function same(a: string, b: string): boolean {
  const [x, y] = [Buffer.from(a), Buffer.from(b)];
  return x.length === y.length && timingSafeEqual(x, y);
}

/** JSON with Uint8Array as {"$bytes": base64} both ways (uploads). */
export function reviveBytes(_k: string, v: unknown): unknown {
  return v && typeof v === 'object' && '$bytes' in v ? new Uint8Array(Buffer.from((v as { $bytes: string }).$bytes, 'base64')) : v;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw Object.assign(new Error('request too large'), { status: 413 });
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

function serveFile(res: ServerResponse, path: string, cache = false): void {
  if (!existsSync(path) || !statSync(path).isFile()) {
    res.writeHead(404).end('not found');
    return;
  }
  res.writeHead(200, {
    'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
    'cache-control': cache ? 'max-age=31536000, immutable' : 'no-cache',
  });
  createReadStream(path).pipe(res);
}

export async function startServer(opts: ServerOptions): Promise<StudioServer> {
  const token = opts.token ?? randomBytes(24).toString('hex');
  const host = opts.host ?? '127.0.0.1';
  const root = resolve(opts.rendererDir);
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const given = tokenOf(req, url);
      if (!given || !same(given, token)) {
        res
          .writeHead(401, { 'content-type': 'text/plain' })
          .end('DG Studio server: missing or wrong access token (open the URL printed at start)');
        return;
      }
      if (url.searchParams.has('token'))
        res.setHeader('set-cookie', `dg_token=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`);
      if (url.pathname.startsWith('/api/')) {
        if (req.method !== 'POST') return send(res, 405, { error: 'use POST' });
        try {
          const args = JSON.parse(await readBody(req), reviveBytes) as unknown;
          if (!Array.isArray(args)) return send(res, 400, { error: 'the body must be a JSON array of arguments' });
          const result = await opts.backend.dispatch(url.pathname.slice(5), args);
          return send(res, 200, { result: result ?? null });
        } catch (e) {
          const err = e as Error & { status?: number };
          return send(res, err.status ?? (err.name === 'PayloadError' || err instanceof SyntaxError ? 400 : 500), { error: err.message });
        }
      }
      if (url.pathname.startsWith('/files/')) {
        const [, , kind, name] = url.pathname.split('/');
        const path = opts.backend.resolveFile(kind ?? '', name ?? '');
        return path ? serveFile(res, path, true) : void res.writeHead(404).end('not found');
      }
      // the built renderer; anything outside its folder is refused
      const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname.slice(1));
      const path = normalize(join(root, rel));
      if (!path.startsWith(root)) return void res.writeHead(403).end('forbidden');
      serveFile(res, path);
    })();
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const given = tokenOf(req, url);
    if (url.pathname !== '/events' || !given || !same(given, token)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const off = opts.backend.onEvent((e) => ws.send(JSON.stringify(e)));
      ws.on('close', off);
    });
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, host, r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return {
    server,
    token,
    url: `http://${host}:${port}/?token=${token}`,
    close: () =>
      new Promise<void>((r) => {
        wss.clients.forEach((c) => c.terminate());
        wss.close();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
