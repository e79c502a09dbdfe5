/**
 * What every command shares: exit codes, one-line errors, Ctrl-C, the progress bar and the gallery.
 * Exit codes: 0 all done, 1 some items failed (named on stderr, the rest are written), 2 nothing done.
 */
import cliProgress from 'cli-progress';
import { Gallery } from '../services/gallery.js';
import { defaultGalleryDir } from '../services/resources.js';

export const EXIT_OK = 0;
export const EXIT_SOME_FAILED = 1;
export const EXIT_NOTHING_DONE = 2;

/** Run a command's body: its return value is the exit code; a thrown error is one `error:` line and exit 2. */
export async function runAction(body: () => Promise<number | void> | number | void): Promise<void> {
  try {
    process.exitCode = (await body()) ?? EXIT_OK;
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exitCode = EXIT_NOTHING_DONE;
  }
}

/** An abort signal raised by the first Ctrl-C, after saying what happens next. */
export function abortOnSigint(saying: string): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    console.error(`\n${saying}`);
    controller.abort();
  });
  return controller.signal;
}

/** A progress bar on a terminal; null when stderr is a file or a pipe (commands then print plain lines). */
export function progressBar(format: string, wanted = true): cliProgress.SingleBar | null {
  if (!wanted || !process.stderr.isTTY) return null;
  return new cliProgress.SingleBar({ format, hideCursor: true }, cliProgress.Presets.shades_classic);
}

/** Open the gallery (the studio's unless `dir`), run `body` on it, close it; errors as in runAction. */
export function withGallery(dir: string | undefined, body: (g: Gallery) => Promise<number | void> | number | void): Promise<void> {
  return runAction(async () => {
    const g = await Gallery.open(dir ?? defaultGalleryDir());
    try {
      return await body(g);
    } finally {
      g.db.close();
    }
  });
}
