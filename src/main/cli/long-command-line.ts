/**
 * onnxruntime-node 1.30 crashes (SIGSEGV, no message) creating a session when the process's
 * command line is longer than about 30 KB: `dg-studio translate photos/*.png` on a thousand files
 * did exactly that. The process cannot shorten its own command line (ONNX Runtime reads it from
 * the OS, not from process.argv), so a long one is re-run in a child with its arguments in a file.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Command lines above this many bytes (arguments after the script) are re-run from a file. */
export const LONG_COMMAND_LINE_BYTES = 16 * 1024;
export const ARGV_FILE_ENV = 'DG_STUDIO_ARGV_FILE';

/** This process's arguments: `argv`, or those the parent left in the file named by DG_STUDIO_ARGV_FILE. */
export function effectiveArgv(argv: string[]): string[] {
  const file = process.env[ARGV_FILE_ENV];
  if (!file) return argv;
  delete process.env[ARGV_FILE_ENV];
  const args = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new Error(`${file} is not a list of arguments`);
  return [argv[0]!, argv[1]!, ...args];
}

/**
 * When the arguments after the script are longer than LONG_COMMAND_LINE_BYTES, run the same
 * script again with them in a temporary file and resolve to its exit code; else null (go on here).
 */
export async function rerunIfLong(argv: string[], limit = LONG_COMMAND_LINE_BYTES): Promise<number | null> {
  const args = argv.slice(2);
  if (process.env[ARGV_FILE_ENV] || args.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0) <= limit) return null;
  const dir = mkdtempSync(join(tmpdir(), 'dg-studio-argv-'));
  const file = join(dir, 'argv.json');
  writeFileSync(file, JSON.stringify(args));
  // Ctrl-C reaches the child too (same process group): it cancels and exits, and so do we
  const ignore = () => {};
  process.on('SIGINT', ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, [...process.execArgv, argv[1]!], {
        stdio: 'inherit',
        env: { ...process.env, [ARGV_FILE_ENV]: file },
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + (signal === 'SIGINT' ? 2 : 15) : 1)));
    });
  } finally {
    process.off('SIGINT', ignore);
    rmSync(dir, { recursive: true, force: true });
  }
}
