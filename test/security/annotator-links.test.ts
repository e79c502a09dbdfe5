/**
 * Annotator links (issue 31): a per-study capability that reaches the next pair, a judgement and an undo of
 * its own annotator — nothing else — and blind images that carry pixels only.
 */
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startBackendProcess, type BackendProcess } from '../../src/main/backend/process.js';
import { startServer, type StudioServer } from '../../src/main/server/server.js';
import type { StudyItemDto } from '../../src/shared/api.js';
import { untilJob } from '../helpers/jobs.js';
import { tempDir } from '../helpers/tmp.js';

describe('annotator links', async () => {
  const dir = await tempDir();
  const rendererDir = join(dir, 'renderer');
  let backend: BackendProcess;
  let server: StudioServer;
  let studyId = 0;
  let otherStudy = 0;

  const owner = async (method: string, args: unknown[] = []) => {
    const r = await fetch(`${server.origin}/api/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-dg-token': server.token },
      body: JSON.stringify(args),
    });
    const json = (await r.json()) as { result?: unknown; error?: string };
    if (!r.ok) throw new Error(`${method}: ${r.status} ${json.error}`);
    return json.result;
  };
  const asAnnotator = (token: string, method: string, args: unknown[] = []) =>
    fetch(`${server.origin}/api/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-dg-annotator': token },
      body: JSON.stringify(args),
    });
  const result = async <T>(r: Response): Promise<T> => {
    expect(r.status).toBe(200);
    return ((await r.json()) as { result: T }).result;
  };

  beforeAll(async () => {
    await mkdir(rendererDir, { recursive: true });
    await writeFile(join(rendererDir, 'index.html'), '<!doctype html><title>DG Studio</title>');
    backend = await startBackendProcess({ dataDir: join(dir, 'data'), mode: 'server' });
    server = await startServer({ backend, rendererDir, port: 0 });
    const { sources } = (await owner('addSamples')) as { sources: { id: string }[] };
    for (const dgWeight of [0, 1]) {
      const { jobId } = (await owner('translate', [
        { sources: sources.slice(0, 3).map((s) => s.id), params: { steps: 2, t0: 0.5, dgWeight, seed: 5 } },
      ])) as { jobId: number };
      expect((await untilJob(backend, jobId)).state).toBe('done');
    }
    const settings = [
      { t0: 0.5, dgWeight: 0 },
      { t0: 0.5, dgWeight: 1 },
    ];
    studyId = (await owner('createStudy', [{ name: 'blind', question: 'faithfulness', settings }])) as number;
    otherStudy = (await owner('createStudy', [{ name: 'other', question: 'realism', settings }])) as number;
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await backend?.close();
  });

  it('judges and undoes as the annotator it names, in the study it names, and knows nothing of the settings', async () => {
    const link = (await owner('createAnnotatorLink', [studyId, 'ada'])) as { id: number; token: string };
    expect(link.token).toMatch(/^dga_/);
    expect(link.token).not.toContain(server.token);
    const study = await result<{ name: string; question: string; annotator: string }>(await asAnnotator(link.token, 'annotatorStudy'));
    expect(study).toEqual({ name: 'blind', question: 'faithfulness', annotator: 'ada' });
    const item = await result<StudyItemDto>(await asAnnotator(link.token, 'annotatorNext'));
    // the same order and sides as the owner's page gives "ada" (the link only names who judges)
    const ownView = (await owner('nextStudyItem', [studyId, 'ada'])) as StudyItemDto;
    expect(item.itemId).toBe(ownView.itemId);
    for (const ref of [item.left, item.right, item.source]) expect(ref).toMatch(/^blind\/[0-9a-f]{32}$/);
    await result(await asAnnotator(link.token, 'annotatorJudge', [item.itemId, 'left']));
    const rows = JSON.parse((await owner('studyExport', [studyId, 'json'])) as string) as { rows: { annotator: string }[] };
    expect(rows.rows.map((r) => r.annotator)).toEqual(['ada']);
    expect(((await owner('listAnnotatorLinks', [studyId])) as { judged: number }[])[0]!.judged).toBe(1);
    // its own undo only: another annotator's judgement stays
    await owner('judge', [studyId, 'bob', ((await owner('nextStudyItem', [studyId, 'bob'])) as StudyItemDto).itemId, 'right']);
    expect(await result<boolean>(await asAnnotator(link.token, 'annotatorUndo'))).toBe(true);
    expect(await result<boolean>(await asAnnotator(link.token, 'annotatorUndo'))).toBe(false);
    const after = JSON.parse((await owner('studyExport', [studyId, 'json'])) as string) as {
      rows: { annotator: string; undone: number }[];
    };
    expect(after.rows.filter((r) => !r.undone).map((r) => r.annotator)).toEqual(['bob']);
    // an item of another study is refused, not judged there
    const foreign = (await owner('nextStudyItem', [otherStudy, 'ada'])) as StudyItemDto;
    const r = await asAnnotator(link.token, 'annotatorJudge', [foreign.itemId, 'left']);
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toMatch(/not part of study/);
  });

  it('calls nothing else: owner methods are 403, a forged annotator or study in the arguments is refused, the owner API ignores it', async () => {
    const { token } = (await owner('createAnnotatorLink', [studyId, 'cy'])) as { token: string };
    for (const [method, args] of [
      ['getSettings', []],
      ['galleryExport', [[1]]],
      ['galleryDelete', [[1]]],
      ['studySummary', [studyId]],
      ['studyExport', [studyId]],
      ['judge', [studyId, 'someone-else', 1, 'left']],
      ['undoJudgement', [studyId, 'ada']],
      ['createAnnotatorLink', [studyId, 'cy2']],
      ['nextStudyItem', [otherStudy, 'cy']],
    ] as const) {
      const r = await asAnnotator(token, method, [...args]);
      expect([method, r.status]).toEqual([method, 403]);
    }
    // the annotator's own calls take no study or annotator: extra arguments are refused, not obeyed
    expect((await asAnnotator(token, 'annotatorUndo', [studyId, 'ada'])).status).toBe(400);
    expect((await asAnnotator(token, 'annotatorNext', [otherStudy])).status).toBe(400);
    // an annotator token in the owner's header is a wrong owner token
    const r = await fetch(`${server.origin}/api/getInfo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-dg-token': token },
      body: '[]',
    });
    expect(r.status).toBe(401);
    // nor does it open the event stream, the owner's session or the gallery's own files
    const ws = new WebSocket(`${server.origin.replace('http', 'ws')}/events`, { origin: server.origin });
    const closed = new Promise<number>((ok) => ws.on('close', (code) => ok(code)));
    ws.on('open', () => ws.send(JSON.stringify({ token })));
    expect(await closed).toBe(4401);
    const cookie = { cookie: `dg_annot=${token}` };
    expect((await fetch(`${server.origin}/session`, { headers: cookie })).status).toBe(403);
    expect((await fetch(`${server.origin}/index.html`, { headers: cookie })).status).toBe(200); // the page's own files
    expect((await fetch(`${server.origin}/session?a=${token}`)).status).toBe(403);
    const item = (await owner('nextStudyItem', [studyId, 'cy'])) as StudyItemDto;
    expect((await fetch(`${server.origin}/files/${item.left}`, { headers: cookie })).status).toBe(404);
  });

  it('serves pixels-only images under opaque names, to its own link only; revoking ends it', async () => {
    const a = (await owner('createAnnotatorLink', [studyId, 'dee'])) as { id: number; token: string };
    const b = (await owner('createAnnotatorLink', [studyId, 'eve'])) as { id: number; token: string };
    // the page opens with ?a= and sets the annotator's own cookie (never the owner's)
    const page = await fetch(`${server.origin}/?a=${encodeURIComponent(a.token)}`);
    expect(page.status).toBe(200);
    const setCookie = page.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^dg_annot=.*HttpOnly; SameSite=Strict/);
    expect(setCookie).not.toContain(server.token);
    const item = await result<StudyItemDto>(await asAnnotator(a.token, 'annotatorNext'));
    const own = (await owner('nextStudyItem', [studyId, 'dee'])) as StudyItemDto;
    const cookieA = { cookie: `dg_annot=${a.token}` };
    for (const [blind, original] of [
      [item.left, own.left],
      [item.right, own.right],
    ] as const) {
      const res = await fetch(`${server.origin}/files/${blind}`, { headers: cookieA });
      expect(res.status).toBe(200);
      const bytes = Buffer.from(await res.arrayBuffer());
      // the gallery's PNG says its setting; the blind copy says nothing, with the same pixels
      const gallery = await fetch(`${server.origin}/files/${original}`, { headers: { 'x-dg-token': server.token } });
      const galleryBytes = Buffer.from(await gallery.arrayBuffer());
      if (!original.startsWith('plot/')) expect(galleryBytes.includes('DG weight')).toBe(true);
      for (const secret of ['parameters', 'DG weight', 'Steps', 'tEXt', 'iTXt', 'zTXt', 'eXIf'])
        expect([secret, bytes.includes(secret)]).toEqual([secret, false]);
      const [p, q] = await Promise.all([bytes, galleryBytes].map((x) => sharp(x).raw().toBuffer()));
      expect(p!.equals(q!)).toBe(true);
      // another link's cookie cannot read it
      expect((await fetch(`${server.origin}/files/${blind}`, { headers: { cookie: `dg_annot=${b.token}` } })).status).toBe(404);
    }
    // a tossed junk cookie beside the real one does not lock the annotator out
    const tossed = { cookie: `dg_annot=junk; dg_annot=${a.token}` };
    expect((await fetch(`${server.origin}/files/${item.left}`, { headers: tossed })).status).toBe(200);
    expect(await owner('revokeAnnotatorLink', [a.id])).toBe(true);
    expect((await asAnnotator(a.token, 'annotatorNext')).status).toBe(401);
    expect((await fetch(`${server.origin}/files/${item.left}`, { headers: cookieA })).status).toBe(401);
    expect((await fetch(`${server.origin}/?a=${encodeURIComponent(a.token)}`)).status).toBe(401);
    const links = (await owner('listAnnotatorLinks', [studyId])) as { annotator: string; revoked: boolean }[];
    expect(links.find((l) => l.annotator === 'dee')?.revoked).toBe(true);
    expect(links.find((l) => l.annotator === 'eve')?.revoked).toBe(false);
  });

  it('a made-up token is 401, and a flood of them is counted like wrong owner tokens', async () => {
    const fake = `dga_${'A'.repeat(43)}`;
    expect((await asAnnotator(fake, 'annotatorNext')).status).toBe(401);
    expect((await asAnnotator('x', 'annotatorNext')).status).toBe(401);
    let last = 0;
    for (let i = 0; i < 70; i++) last = (await asAnnotator(fake, 'annotatorNext')).status;
    expect(last).toBe(429);
  });
});
