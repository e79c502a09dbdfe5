/** `dg-studio serve`: the studio in a browser — the back end in its own process behind the token-protected HTTP server. */
import type { Command } from '@commander-js/extra-typings';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startBackendProcess } from '../../backend/process.js';
import { DEFAULT_PORT, OTHER_STUDIOS_PORTS, startServer } from '../../server/server.js';
import { dataDir, resourcesDir } from '../../services/resources.js';
import { serverToken, tokenFromFile, tokenWeakness } from '../../services/server-token.js';
import { int } from '../options.js';
import { EXIT_NOTHING_DONE, EXIT_OK, runAction } from '../run.js';

function serveCommand(program: Command) {
  return program
    .command('serve')
    .description('serve the studio to a browser: the same API over HTTP + WebSocket, loopback and token-protected')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', `port (0: any free one; default ${DEFAULT_PORT}, which no other studio uses)`, int('--port'), DEFAULT_PORT)
    .option('--data <dir>', 'studio data folder (gallery, inbox, trained discriminators)')
    .option('--token-file <file>', 'read the access token from this file (it does not show in the process list)')
    .option(
      '--token <token>',
      'access token, at least 32 random characters (visible to other users in the process list: prefer --token-file; default: kept in the data folder, so open pages keep working after a restart)',
    )
    .option('--new-token', 'make a new access token (pages opened with the old one must be reopened)', false)
    .option('--allow-root <dirs...>', 'more folders the output folder may lie in (default: the data folder and your home)');
}
type ServeOptions = ReturnType<ReturnType<typeof serveCommand>['opts']>;

export function addServe(program: Command): void {
  serveCommand(program).action((o) => runAction(() => serve(o)));
}

/** A listen error in words, with what to do. */
function listenProblem(e: Error, host: string, port: number): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return `port ${port} on ${host} is already in use (another DG Studio or another program); choose another with --port N, or --port 0 for any free port`;
    case 'EACCES':
      return `not allowed to listen on ${host}:${port}; choose a port above 1023`;
    case 'EADDRNOTAVAIL':
      return `${host} is not an address of this machine`;
    default:
      return `cannot start the server: ${e.message}`;
  }
}

async function serve(o: ServeOptions): Promise<number> {
  const rendererDir = process.env['DG_STUDIO_RENDERER'] ?? join(dirname(resourcesDir()), 'out', 'renderer');
  if (!existsSync(join(rendererDir, 'index.html')))
    throw new Error(`the studio UI is not built (${rendererDir}); run "npm run build" first`);
  if (o.port < 0 || o.port > 65535) throw new Error(`--port must be 0…65535, got ${o.port}`);
  if (OTHER_STUDIOS_PORTS.includes(o.port))
    console.error(`note: port ${o.port} is another studio's default; if it is busy, use --port ${DEFAULT_PORT}`);
  if (o.host !== '127.0.0.1' && o.host !== 'localhost' && o.host !== '::1')
    console.error(`warning: listening on ${o.host}: anyone who can reach it and has the token can use the studio`);
  if (o.token !== undefined) {
    const weak = tokenWeakness(o.token);
    if (weak) throw new Error(`--token: ${weak}`);
    console.error('note: a --token shows in the process list; --token-file keeps it out of it');
  }
  const token = o.token ?? (o.tokenFile ? await tokenFromFile(o.tokenFile) : await serverToken(o.data ?? dataDir(), o.newToken));
  const backend = await startBackendProcess({ dataDir: o.data, mode: 'server', allowedRoots: o.allowRoot, onLog: (l) => console.error(l) });
  let s;
  try {
    s = await startServer({ backend, rendererDir, host: o.host, port: o.port, token, onLog: (l) => console.error(`note: ${l}`) });
  } catch (e) {
    await backend.close();
    console.error(`error: ${listenProblem(e as Error, o.host, o.port)}`);
    return EXIT_NOTHING_DONE;
  }
  console.log(`DG Studio server: ${s.url}`);
  const stop = async () => {
    await s.close();
    await backend.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  return EXIT_OK;
}
