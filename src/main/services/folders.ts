/**
 * Which folders the studio may write results into: inside allowed roots (the data folder, the
 * user's home, roots given at start), after following links, and never a system folder. Checked
 * before any mkdir, so a hostile setting cannot create folders elsewhere or hang on /proc.
 */
import { realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';

const SYSTEM = ['/proc', '/sys', '/dev', '/boot', '/etc', '/bin', '/sbin', '/usr', '/lib', '/lib64', '/run', '/var/run'];

/** The real path of a folder that may not exist yet: its nearest existing ancestor's, plus the rest. */
export function realPathOfFuture(p: string): string {
  let head = resolve(p);
  const tail: string[] = [];
  for (;;) {
    try {
      return resolve(realpathSync(head), ...tail.reverse());
    } catch {
      const up = dirname(head);
      if (up === head) return resolve(p);
      tail.push(head.slice(up.length).replace(/^[/\\]/, ''));
      head = up;
    }
  }
}

const within = (root: string, p: string) => {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/** Why `folder` cannot be an output folder (null when it can). */
export function outputFolderProblem(folder: string, roots: string[]): string | null {
  if (!folder.trim()) return 'the output folder is empty';
  if (folder.includes('\0')) return 'the output folder contains a NUL byte';
  if (!isAbsolute(folder)) return `the output folder must be an absolute path (got "${folder}")`;
  const real = realPathOfFuture(folder);
  if (SYSTEM.some((s) => within(s, real)))
    return `"${folder}" is a system folder; choose a folder in your home or the studio's data folder`;
  const realRoots = roots.map((r) => realPathOfFuture(r));
  if (!realRoots.some((r) => r !== '/' && within(r, real)))
    return `"${folder}" is outside the folders the studio may write to (${realRoots.join(', ')}); choose one inside them, or start the server with --allow-root`;
  // the home's hidden folders (.ssh, .gnupg, .config, …) hold keys and start-up files: never an output folder,
  // unless a root other than the home itself lies there (the studio's own data folder, ~/.local/share/dg-studio)
  const home = realPathOfFuture(homedir());
  const first = within(home, real) ? relative(home, real).split(sep)[0] : undefined;
  if (first?.startsWith('.') && !realRoots.some((r) => r !== home && within(home, r) && within(r, real)))
    return `"${folder}" is inside the hidden folder ~/${first}, which holds settings and keys; choose a visible folder`;
  return null;
}

/** The most bytes of a file name the studio makes from a user's name (ext4 and most others allow 255). */
export const MAX_STEM_BYTES = 150;

/**
 * A file-name stem the server makes from a name a user (or an upload) gave: only its last path component,
 * no control or reserved characters (< > : " / \ | ? *), no leading dots, at most `maxBytes` of UTF-8 (cut
 * on a character boundary), never empty. The name a user sees stays in the sidecar; this is only the file's.
 */
export function safeFileStem(name: string, maxBytes = MAX_STEM_BYTES): string {
  const last = name.split(/[/\\]/).pop() ?? '';
  let stem = last
    // control characters (C0 and DEL) and the characters Windows reserves
    .replace(/[<>:"|?*]/g, '_')
    .replace(/./gsu, (ch) => (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f ? '_' : ch))
    .replace(/^[.\s]+/, '')
    .trim();
  const enc = new TextEncoder();
  if (enc.encode(stem).length > maxBytes) {
    const chars = [...stem];
    while (chars.length && enc.encode(chars.join('')).length > maxBytes) chars.pop();
    stem = chars.join('').trim();
  }
  return stem || 'image';
}

/** `join(dir, name)`, refused unless it stays inside `dir` (a last guard behind safeFileStem). */
export function fileInside(dir: string, name: string): string {
  const path = resolve(dir, name);
  if (!within(resolve(dir), path) || path === resolve(dir)) throw new Error(`refused to write "${name}": it would land outside ${dir}`);
  return path;
}
