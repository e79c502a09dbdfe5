/**
 * The back end's human-study room: a study's next pair as images the page can fetch (the owner's references,
 * or an annotator link's pixels-only copies), and what an annotator link may call (ANNOTATOR_API only, bound
 * to the link's study and annotator; docs/security.md). StudioBackend delegates to it.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ANNOTATOR_API, type AnnotatorMethod } from '../../shared/api.js';
import { PayloadError } from '../../shared/errors.js';
import { AnnotatorLinks } from '../services/annotator-links.js';
import type { Gallery } from '../services/gallery.js';
import { obviousImage, Studies } from '../services/studies.js';
import type { Inbox } from './inbox.js';

/** file name (a hex id, as resolveFile wants) of the flat grey image of obvious attention checks */
const GREY_IMAGE = '0'.repeat(32);

export class StudyRoom {
  constructor(
    private readonly gallery: Gallery,
    private readonly inbox: Inbox,
    private readonly home: string,
    /** the file a page reference names (StudioBackend.resolveFile) */
    private readonly resolveFile: (kind: string, name: string) => string | null,
  ) {}

  get studies(): Studies {
    return new Studies(this.gallery);
  }

  get links(): AnnotatorLinks {
    return new AnnotatorLinks(this.gallery);
  }

  /**
   * The next pair of `annotator` in `studyId`, each image named by `ref` (the owner's page: the file's own
   * reference; an annotator link: a pixels-only copy under an opaque name).
   */
  async studyItem(studyId: number, annotator: string, ref: (kind: string, name: string) => Promise<string>) {
    const it = this.studies.next(studyId, annotator);
    if (!it) return null;
    const grey = join(this.home, 'plots', `${GREY_IMAGE}.png`);
    if (!existsSync(grey)) {
      await mkdir(join(this.home, 'plots'), { recursive: true });
      await obviousImage(grey);
    }
    const image = (id: number | null) => (id === null ? ref('plot', GREY_IMAGE) : ref('image', this.gallery.get(id)!.sha256!));
    const thumb = this.inbox.sourceOf(it.sourcePath).thumb;
    return {
      itemId: it.itemId,
      position: it.position,
      total: it.total,
      done: it.done,
      source: thumb ? await ref('source', thumb.slice('source/'.length)) : null,
      left: await image(it.left),
      right: await image(it.right),
    };
  }

  /** An annotator link's call: only ANNOTATOR_API, with the study and annotator taken from the link. */
  async annotatorCall(token: string, method: string, args: unknown[]): Promise<unknown> {
    const grant = this.links.grant(token);
    if (!grant)
      throw Object.assign(new Error("this annotator link is unknown or was revoked; ask the study's owner for a new one"), { status: 401 });
    if (!Object.hasOwn(ANNOTATOR_API, method))
      throw Object.assign(new Error("an annotator link can only fetch and judge its study's pairs"), { status: 403 });
    const m = method as AnnotatorMethod;
    const parsed = ANNOTATOR_API[m].args.safeParse(args);
    if (!parsed.success) throw new PayloadError(method, parsed.error, args);
    const { studyId, annotator } = grant;
    if (m === 'annotatorStudy') {
      // one row, not every study's item count: this check answers every page file and image of an annotator
      const s = this.studies.study(studyId);
      return { name: s.name, question: s.question, annotator };
    }
    if (m === 'annotatorNext')
      return this.studyItem(studyId, annotator, async (kind, name) => {
        const path = this.resolveFile(kind, name);
        if (!path) throw new Error(`a study image is missing (${kind})`);
        return this.links.blindCopy(grant, `${kind}:${name}`, path);
      });
    if (m === 'annotatorJudge') {
      const [itemId, choice] = parsed.data as [number, 'left' | 'right' | 'tie'];
      try {
        return this.studies.judge(studyId, annotator, itemId, choice);
      } catch (e) {
        throw Object.assign(e as Error, { status: 400 }); // an item of another study: the request's fault
      }
    }
    return this.studies.undo(studyId, annotator);
  }

  /** A blind image of the link whose token this is (`blind/<name>`), or null. */
  resolveAnnotatorFile(token: string, name: string): string | null {
    const grant = this.links.grant(token);
    return grant ? this.links.blindFile(grant, name) : null;
  }
}
