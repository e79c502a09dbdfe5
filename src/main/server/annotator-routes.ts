/**
 * What an annotator link reaches over HTTP (docs/security.md, "Annotators"): its calls (ANNOTATOR_API, checked
 * and bound to the link by the back end) and, by GET, the studio's page — which opens in annotator mode — and
 * the link's own blind images. Never the owner's session, events or gallery files.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ANNOTATOR_TOKEN_HEADER, type ServedBackend } from '../../shared/api.js';
import { answer, cookieTokens, fetchSiteAllowed, readCall, rendererFile, safeDecode, sendText, serveFile } from './http.js';

export interface AnnotatorRouteContext {
  backend: ServedBackend;
  /** failed authentications (shared with the owner's: a wrong annotator token counts like a wrong owner token) */
  failures: { fail(what: string): boolean };
  headers: Record<string, string>;
  /** the built renderer's folder */
  root: string;
}

export function annotatorRoutes(ctx: AnnotatorRouteContext) {
  const { backend: b, failures, headers, root } = ctx;
  /** A call with an annotator link's token: ANNOTATOR_API only (the back end binds it to the link's study). */
  const annotatorCall = async (req: IncomingMessage, res: ServerResponse, given: string, name: string) => {
    const args = await readCall(req, name);
    return answer(res, headers, () =>
      b.dispatchAnnotator(given, name, args).catch((e: Error & { status?: number }) => {
        // a wrong or revoked token counts like a wrong owner token
        if (e.status === 401 && failures.fail(`annotator POST ${name.slice(0, 64)}`))
          throw Object.assign(new Error('too many requests with a wrong access token'), { status: 429 });
        throw e;
      }),
    );
  };

  /** The first of the request's annotator tokens (query, header, cookies) that names a live link, or null. */
  const liveAnnotatorToken = async (req: IncomingMessage, url: URL): Promise<string | null> => {
    const header = req.headers[ANNOTATOR_TOKEN_HEADER];
    const candidates = [url.searchParams.get('a'), typeof header === 'string' ? header : null, ...cookieTokens(req, 'dg_annot')];
    for (const c of candidates) {
      if (!c) continue;
      try {
        await b.dispatchAnnotator(c, 'annotatorStudy', []);
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
      const file = parts.length === 4 && parts[2] === 'blind' ? await b.resolveAnnotatorFile(given, safeDecode(parts[3]!, 'path')) : null;
      return serveFile(res, file, headers, true);
    }
    if (path === '/session') return sendText(res, 403, 'an annotator link opens its study only', headers);
    const cookie: Record<string, string> = url.searchParams.has('a')
      ? { 'set-cookie': `dg_annot=${encodeURIComponent(given)}; HttpOnly; SameSite=Strict; Path=/` }
      : {};
    return serveFile(res, rendererFile(root, path), { ...headers, ...cookie });
  };

  return { call: annotatorCall, get: annotatorGet };
}
