/**
 * Annotator links: a capability per study and annotator. Whoever holds the link's token can fetch that
 * study's next pair as the annotator it names, judge it and undo their own last judgement — nothing else
 * (docs/security.md, "Annotators"). The token is shown once, when the link is made; only its SHA-256 is
 * stored, so the gallery file does not hold working links. The images an annotator sees are copies that
 * carry pixels only (no `parameters` text, no metadata), named by an HMAC of the output under the link's
 * secret, in a folder of their own per link: the name says nothing about the setting, and one link cannot
 * read another's files.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pixelsOnlyPng, writeFileAtomic } from '../engine/io/image-io.js';
import type { AnnotatorLinkDto } from '../../shared/api.js';
import type { Gallery } from './gallery.js';

/** What a valid token stands for. */
export interface AnnotatorGrant {
  linkId: number;
  studyId: number;
  annotator: string;
  /** the key that names this link's blind images (the token's digest: stable, never sent) */
  key: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Annotator tokens: 32 random bytes, base64url, with a prefix so a leaked one is recognisable for what it is. */
export const ANNOTATOR_TOKEN = /^dga_[A-Za-z0-9_-]{43}$/;

export class AnnotatorLinks {
  constructor(private readonly g: Gallery) {}

  /** A new link; its token is returned once and never again. */
  create(studyId: number, annotator: string): { id: number; token: string } {
    if (!this.g.db.prepare('SELECT 1 FROM studies WHERE id = ?').get(studyId)) throw new Error(`there is no study ${studyId}`);
    const token = `dga_${randomBytes(32).toString('base64url')}`;
    const id = Number(
      this.g.db
        .prepare('INSERT INTO annotator_links (study_id, annotator, token_sha256, created_at) VALUES (?, ?, ?, ?)')
        .run(studyId, annotator, sha256(token), new Date().toISOString()).lastInsertRowid,
    );
    return { id, token };
  }

  list(studyId: number): AnnotatorLinkDto[] {
    const rows = this.g.db
      .prepare(
        `SELECT l.id, l.study_id, l.annotator, l.created_at, l.revoked,
                (SELECT COUNT(*) FROM judgements j WHERE j.study_id = l.study_id AND j.annotator = l.annotator AND j.undone = 0) AS judged
         FROM annotator_links l WHERE l.study_id = ? ORDER BY l.id`,
      )
      .all(studyId) as { id: number; study_id: number; annotator: string; created_at: string; revoked: number; judged: number }[];
    return rows.map((r) => ({
      id: r.id,
      studyId: r.study_id,
      annotator: r.annotator,
      createdAt: r.created_at,
      revoked: r.revoked === 1,
      judged: r.judged,
    }));
  }

  /** Revoke a link (its judgements stay); its blind images are deleted. False if there was no such live link. */
  async revoke(linkId: number): Promise<boolean> {
    const changed = this.g.db.prepare('UPDATE annotator_links SET revoked = 1 WHERE id = ? AND revoked = 0').run(linkId).changes;
    await rm(this.folder(linkId), { recursive: true, force: true });
    return changed > 0;
  }

  /** The grant of a live link's token, or null (unknown, malformed or revoked: the caller answers 401). */
  grant(token: string): AnnotatorGrant | null {
    if (!ANNOTATOR_TOKEN.test(token)) return null;
    const key = sha256(token);
    const row = this.g.db.prepare('SELECT id, study_id, annotator FROM annotator_links WHERE token_sha256 = ? AND revoked = 0').get(key) as
      { id: number; study_id: number; annotator: string } | undefined;
    return row ? { linkId: row.id, studyId: row.study_id, annotator: row.annotator, key } : null;
  }

  private folder(linkId: number): string {
    return join(this.g.dir, 'blind', String(linkId));
  }

  /**
   * A pixels-only copy of `path` for this link, named opaquely (`blind/<32 hex>`, the HMAC of `what` under the
   * link's key); made once, then reused.
   */
  async blindCopy(grant: AnnotatorGrant, what: string, path: string): Promise<string> {
    const name = createHmac('sha256', grant.key).update(what).digest('hex').slice(0, 32);
    const file = join(this.folder(grant.linkId), `${name}.png`);
    if (!existsSync(file)) {
      await mkdir(this.folder(grant.linkId), { recursive: true });
      await writeFileAtomic(file, await pixelsOnlyPng(path));
    }
    return `blind/${name}`;
  }

  /** The file of a blind name, for this link only (null: not one of its names). */
  blindFile(grant: AnnotatorGrant, name: string): string | null {
    if (!/^[0-9a-f]{32}$/.test(name)) return null;
    const file = join(this.folder(grant.linkId), `${name}.png`);
    return existsSync(file) ? file : null;
  }
}
