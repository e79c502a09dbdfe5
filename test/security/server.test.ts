/**
 * The attack suite: a live `serve` (back end in its own process) probed as another web page or
 * process on the same machine would. After every probe the server must be alive, nothing may have
 * changed, and nothing may have been read without the token.
 */
import { createConnection } from 'node:net';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startBackendProcess, type BackendProcess } from '../../src/main/backend/process.js';
import { AuthFailures, startServer, type StudioServer } from '../../src/main/server/server.js';
import { Rng } from '../../src/main/engine/rng.js';
import { tempDir } from '../helpers/tmp.js';

/** One raw HTTP exchange (no client library sanitising it): status line and the whole answer. */
function raw(port: number, request: string | Buffer, timeoutMs = 3000): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const sock = createConnection({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    const done = () => {
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
    };
    sock.setTimeout(timeoutMs, () => sock.destroy());
    sock.on('data', (c) => chunks.push(c));
    sock.on('close', done);
    sock.on('error', () => undefined);
    sock.end(request); // half-close: the server sees the whole request at once
  });
}

describe('server mode under attack', async () => {
  const dir = await tempDir();
  const rendererDir = join(dir, 'renderer');
  let backend: BackendProcess;
  let server: StudioServer;
  let port: number;
  let host: string;
  const secret = join(dir, 'renderer-x', 'secret.txt');

  const api = (method: string, args: unknown[] = [], headers: Record<string, string> = {}) =>
    fetch(`${server.origin}/api/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-dg-token': server.token, ...headers },
      body: JSON.stringify(args),
    });
  const alive = async () => {
    const r = await api('getInfo');
    expect(r.status).toBe(200);
  };
  let settingsBefore = '';
  const unchanged = async () => {
    expect(await (await api('getSettings')).text()).toBe(settingsBefore);
  };

  beforeAll(async () => {
    await mkdir(rendererDir, { recursive: true });
    await writeFile(join(rendererDir, 'index.html'), '<!doctype html><title>DG Studio</title>');
    await mkdir(join(dir, 'renderer-x'), { recursive: true });
    await writeFile(secret, 'the sibling folder must not be served');
    backend = await startBackendProcess({ dataDir: join(dir, 'data'), mode: 'server' });
    server = await startServer({ backend, rendererDir, port: 0 });
    port = Number(new URL(server.origin).port);
    host = `127.0.0.1:${port}`;
    settingsBefore = await (await api('getSettings')).text();
  });

  afterAll(async () => {
    await server?.close();
    await backend?.close();
  });

  it('a malformed cookie, on the API, the page and the WebSocket upgrade, is refused and the server stays up', async () => {
    for (const path of ['/api/getInfo', '/', '/files/thumb/00']) {
      const r = await raw(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nCookie: dg_token=%E0%A4%A\r\nConnection: close\r\n\r\n`);
      expect([401, 405]).toContain(r.status);
    }
    const ws = await raw(
      port,
      `GET /events HTTP/1.1\r\nHost: ${host}\r\nCookie: dg_token=%E0%A4%A\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n\r\n`,
    );
    expect(ws.status).toBe(403);
    await alive();
  });

  it('a cookie tossed by a page on another local port (dg_token=junk; path=/files, sent first) does not lock the user out', async () => {
    const get = (cookie: string) => fetch(`${server.origin}/`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } });
    // the browser sends the more specific path's cookie first: the junk one, then the real one
    expect((await get(`dg_token=junk; dg_token=${encodeURIComponent(server.token)}`)).status).toBe(200);
    expect((await get('dg_token=junk')).status).toBe(401);
  });

  it('a malformed path with a valid token is a 400, not a crash', async () => {
    const r = await raw(port, `GET /%ZZ HTTP/1.1\r\nHost: ${host}\r\nX-DG-Token: ${server.token}\r\nConnection: close\r\n\r\n`);
    expect(r.status).toBe(400);
    expect(r.text).toMatch(/malformed percent-encoding/);
    await alive();
  });

  it('another site on 127.0.0.1 cannot ride the cookie: no-cors fetch, a text/plain form, a cross-origin WebSocket', async () => {
    const cookie = `dg_token=${server.token}`;
    const evil = { origin: 'http://127.0.0.1:9999', 'sec-fetch-site': 'same-site', cookie };
    // the no-cors fetch / form: cookie, text/plain body, another origin
    const form = await fetch(`${server.origin}/api/setSettings`, {
      method: 'POST',
      headers: { ...evil, 'content-type': 'text/plain' },
      body: JSON.stringify([{ outputDir: join(dir, 'pwned') }]),
    });
    expect([401, 403]).toContain(form.status);
    // even holding the token, a request from another origin is refused
    const withToken = await api('setSettings', [{ outputDir: join(dir, 'pwned') }], { origin: 'http://127.0.0.1:9999' });
    expect(withToken.status).toBe(403);
    const page = await fetch(`${server.origin}/`, { headers: evil });
    expect(page.status).toBe(403);
    const img = await fetch(`${server.origin}/files/thumb/${'0'.repeat(32)}`, { headers: { cookie, 'sec-fetch-site': 'same-site' } });
    expect(img.status).toBe(401);
    await unchanged();
    // a WebSocket from another origin with the cookie: refused before the upgrade
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(`ws://${host}/events`, { headers: { cookie }, origin: 'http://evil.example' });
      ws.on('unexpected-response', (_req, res) => {
        expect(res.statusCode).toBe(403);
        resolve();
      });
      ws.on('open', () => {
        throw new Error('a cross-origin WebSocket was accepted');
      });
      ws.on('error', () => resolve());
    });
    // same origin but no token message: closed with 4401, no event ever sent
    const code = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://${host}/events`, { headers: { cookie }, origin: server.origin });
      const got: string[] = [];
      ws.on('message', (m) => got.push(String(m)));
      ws.on('open', () => ws.send(JSON.stringify({ token: 'wrong' })));
      ws.on('close', (c) => {
        expect(got).toEqual([]);
        resolve(c);
      });
    });
    expect(code).toBe(4401);
    await alive();
  });

  it('the event socket works with the token in its first message', async () => {
    const ok = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`ws://${host}/events`, { origin: server.origin });
      ws.on('open', () => ws.send(JSON.stringify({ token: server.token })));
      ws.on('message', (m) => {
        resolve(String(m));
        ws.close();
      });
      ws.on('error', reject);
    });
    expect(JSON.parse(ok)).toEqual({ authenticated: true });
  });

  it('Host names other than this server are refused (DNS rebinding)', async () => {
    const r = await raw(
      port,
      `POST /api/getInfo HTTP/1.1\r\nHost: evil.example:${port}\r\nContent-Type: application/json\r\nX-DG-Token: ${server.token}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]`,
    );
    expect(r.status).toBe(421);
    expect(r.text).not.toMatch(/"result"/);
  });

  it('only JSON bodies; 404 and 405 for unknown routes and methods; security headers on every answer', async () => {
    expect((await api('getInfo', [], { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await api('noSuchMethod')).status).toBe(404);
    const put = await fetch(`${server.origin}/`, { method: 'PUT', headers: { 'x-dg-token': server.token } });
    expect(put.status).toBe(405);
    expect((await fetch(`${server.origin}/api/getInfo`, { headers: { 'x-dg-token': server.token } })).status).toBe(405);
    expect((await fetch(`${server.origin}/nope.js`, { headers: { 'x-dg-token': server.token } })).status).toBe(404);
    for (const r of [put, await fetch(`${server.origin}/`), await api('getInfo'), await fetch(`${server.origin}/?token=${server.token}`)]) {
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
    }
  });

  it('the static handler serves nothing outside its folder: traversal, a sibling folder, encoded dots', async () => {
    for (const p of [
      '/../renderer-x/secret.txt',
      '/%2e%2e/renderer-x/secret.txt',
      '/..%2frenderer-x%2fsecret.txt',
      '/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    ]) {
      const r = await raw(port, `GET ${p} HTTP/1.1\r\nHost: ${host}\r\nX-DG-Token: ${server.token}\r\nConnection: close\r\n\r\n`);
      expect(r.status).not.toBe(200);
      expect(r.text).not.toMatch(/sibling folder/);
    }
  });

  it('an output folder outside the allowed roots, relative or in /proc, is refused at once', async () => {
    for (const outputDir of ['/proc/x', 'relative/dir', '/etc/dg', '/tmp/../proc/1']) {
      const t0 = Date.now();
      const r = await api('setSettings', [{ outputDir }]);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(((await r.json()) as { error: string }).error).toMatch(/absolute path|system folder|outside the folders/);
      expect(Date.now() - t0).toBeLessThan(3000);
    }
    await unchanged();
  });

  it('a discriminator manifest cannot read files outside its folder, and the answer does not depend on whether they exist', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#123456' } })
      .png()
      .toBuffer();
    const errors: string[] = [];
    for (const target of [secret, join(dir, 'does-not-exist.png'), '../../renderer-x/secret.txt']) {
      const manifest = {
        format: 'dg-studio/discriminator@1',
        kind: 'analytic-mixture-ratio',
        name: 'probe',
        dataShape: [3, 8, 8],
        real: { weights: [1], variances: [0.1], meanImages: [target] },
        fake: { weights: [1], variances: [0.1], meanImages: ['a.png'] },
      };
      const r = await api('importModel', [
        {
          kind: 'discriminator',
          files: [
            { name: 'manifest.json', data: { $bytes: Buffer.from(JSON.stringify(manifest)).toString('base64') } },
            { name: 'a.png', data: { $bytes: png.toString('base64') } },
          ],
        },
      ]);
      expect(r.status).toBeGreaterThanOrEqual(400);
      errors.push(((await r.json()) as { error: string }).error.replace(target, '<target>'));
    }
    expect(new Set(errors).size).toBe(1);
    await alive();
  });

  it('a training named "." or "..", or one that exists, is refused', async () => {
    for (const name of ['..', '.', '.hidden']) {
      const r = await api('trainDiscriminator', [{ sources: ['a', 'b'], targets: ['c', 'd'], t0Range: [0.3, 0.6], steps: 1, name }]);
      expect(r.status).toBe(400);
    }
  });

  it(`survives ${200} generated malformed requests and frames, changes nothing, reads nothing without the token`, async () => {
    const rng = new Rng(2026);
    const pick = <T>(xs: T[]) => xs[Math.floor(rng.uniform() * xs.length)]!;
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rng.uniform() * 256)));
    const paths = [
      '/',
      '/api/getInfo',
      '/api/setSettings',
      '/api/%ZZ',
      '/%',
      '/files/..%2f..%2f',
      '/events',
      '/session',
      '//',
      '/api/',
      '/\u00ff',
      '/a?token=%',
    ];
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'TRACE', 'FOO', 'G\u00e9T'];
    const headerJunk = [
      'Cookie: dg_token=%E0%A4%A',
      'Cookie: dg_token=' + 'A'.repeat(9000),
      'X-DG-Token: %00',
      'Authorization: Bearer ',
      'Content-Type: application/json; charset=\u00ff',
      'Content-Length: -1',
      'Content-Length: 99999999999',
      'Transfer-Encoding: chunked',
      'Origin: null',
      'Host: ',
      'Sec-Fetch-Site: cross-site',
      'Upgrade: websocket',
    ];
    let secretsSeen = 0;
    for (let i = 0; i < 200; i++) {
      const kind = i % 4;
      let req: Buffer;
      if (kind === 0)
        req = junk(1 + Math.floor(rng.uniform() * 300)); // random bytes
      else {
        const body =
          kind === 2 ? pick(['[', '{"a":', '[{"$bytes":5}]', '[]'.repeat(1000), '\u0000', JSON.stringify([{ outputDir: '/proc/x' }])]) : '';
        const hs = [`Host: ${pick([host, 'evil.example', host])}`, pick(headerJunk), pick(headerJunk)];
        if (kind === 3) hs.push(`X-DG-Token: ${pick(['nope', server.token.slice(0, 10), '\u00e9'.repeat(48)])}`);
        req = Buffer.from(
          `${pick(methods)} ${pick(paths)} HTTP/1.1\r\n${hs.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          'latin1',
        );
      }
      const r = await raw(port, req, 1500);
      if (/"token"\s*:|DG Studio<\/title>|"result"/.test(r.text)) secretsSeen++;
      if (i % 20 === 19) await alive();
    }
    // malformed WebSocket frames after a valid upgrade, without the token
    for (let i = 0; i < 20; i++) {
      await raw(
        port,
        Buffer.concat([
          Buffer.from(
            `GET /events HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: ${server.origin}\r\n\r\n`,
          ),
          junk(1 + Math.floor(rng.uniform() * 200)),
        ]),
        800,
      );
    }
    expect(secretsSeen).toBe(0);
    await alive();
    await unchanged();
  });

  it('answers getInfo promptly while the engine trains (the engine runs in its own process)', async () => {
    // a long job in the back end: a discriminator training (toy default model, many steps)
    const pngs = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 60 * i, g: 100, b: 200 - 40 * i } } })
          .png()
          .toBuffer(),
      ),
    );
    const added = (await (
      await api('addSources', [{ files: pngs.map((p, i) => ({ name: `s${i}.png`, data: { $bytes: p.toString('base64') } })) }])
    ).json()) as { result: { sources: { id: string }[] } };
    const ids = added.result.sources.map((s) => s.id);
    const started = await api('trainDiscriminator', [
      { sources: ids.slice(0, 2), targets: ids.slice(2), t0Range: [0.3, 0.6], steps: 100000, batchSize: 64, name: 'latency-probe' },
    ]);
    expect(started.status).toBe(200);
    const { jobId } = ((await started.json()) as { result: { jobId: number } }).result;
    await new Promise((r) => setTimeout(r, 1500)); // past the start-up, into the training steps
    const lat: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await alive();
      lat.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 50));
    }
    lat.sort((a, b) => a - b);
    const p95 = lat[Math.floor(0.95 * (lat.length - 1))]!;
    console.log(`getInfo latency during a discriminator training: median ${lat[10]!.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms`);
    expect(p95).toBeLessThan(3000); // generous (was 4–10 s with the engine in the HTTP process): the figure goes to docs/benchmarks.md
    const again = await api('trainDiscriminator', [
      { sources: ids.slice(0, 2), targets: ids.slice(2), t0Range: [0.3, 0.6], steps: 1, name: 'latency-probe' },
    ]);
    expect(((await again.json()) as { error: string }).error).toMatch(/exists already/);
    await api('cancelJob', [jobId]);
  });

  it('a 5-million-id galleryDelete (35 MB) is refused while parsing, and getInfo is answered in under a second meanwhile', async () => {
    const ids = Array.from({ length: 5_000_000 }, (_, i) => i + 1);
    const body = JSON.stringify([ids]);
    expect(body.length).toBeGreaterThan(30e6);
    const del = fetch(`${server.origin}/api/galleryDelete`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-dg-token': server.token },
    });
    await new Promise((r) => setTimeout(r, 20));
    const t0 = performance.now();
    await alive();
    const latency = performance.now() - t0;
    const res = await del;
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/a list in the request has 5000000 items; at most 100000 are taken/);
    expect(latency).toBeLessThan(1000); // the issue's own bound; was ~3 minutes of a blocked engine
    // the API's own limit for a delete is lower, and says so in words
    const tooMany = await api('galleryDelete', [Array.from({ length: 10_001 }, (_, i) => i + 1)]);
    expect(tooMany.status).toBe(400);
    expect(((await tooMany.json()) as { error: string }).error).toMatch(/10000/);
  });

  it('a crashed engine is restarted, and the call it was running fails with a clear message', async () => {
    const pid = backend.pid!;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && backend.pid === pid; i++) await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 100; i++) {
      const r = await api('getInfo');
      if (r.status === 200) break;
      expect(((await r.json()) as { error: string }).error).toMatch(/engine process stopped/);
      await new Promise((r) => setTimeout(r, 100));
    }
    await alive();
    expect(backend.pid).not.toBe(pid);
  });
});

describe('serve refuses a busy port in one clear line', () => {
  it('EADDRINUSE becomes a message with a suggestion', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'r'), { recursive: true });
    await writeFile(join(dir, 'r', 'index.html'), 'x');
    const b = {
      dispatch: async () => null,
      resolveFile: () => null,
      dispatchAnnotator: async () => null,
      resolveAnnotatorFile: () => null,
      onEvent: () => () => undefined,
    };
    const first = await startServer({ backend: b, rendererDir: join(dir, 'r'), port: 0 });
    const port = Number(new URL(first.origin).port);
    await expect(startServer({ backend: b, rendererDir: join(dir, 'r'), port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await first.close();
    expect((await readFile(join(dir, 'r', 'index.html'), 'utf8')).length).toBe(1);
  });
});

describe('failed authentications', () => {
  it('are logged as one summary at most every 10 s, and past the limit a wrong token gets 429', () => {
    const lines: string[] = [];
    const f = new AuthFailures((l) => lines.push(l), 3);
    const t = 1_000_000;
    expect([f.fail('a', t), f.fail('b', t + 1000), f.fail('c', t + 2000)]).toEqual([false, false, false]);
    expect(f.fail('d', t + 3000)).toBe(true); // the 4th in a minute
    expect(lines).toEqual(['1 request(s) with a missing or wrong access token since the last report (latest: a; 1 in the last minute)']);
    f.fail('e', t + 12_000);
    expect(lines[1]).toBe('4 request(s) with a missing or wrong access token since the last report (latest: e; 5 in the last minute)');
    expect(f.fail('f', t + 80_000)).toBe(false); // the minute has passed
  });
});
