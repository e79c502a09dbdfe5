/**
 * A real redis-server (Debian's package; .ci/run installs it) on a free loopback port, with its append-only
 * file in a temporary folder so a restart keeps the queue. For tests and benches (no vitest imports).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, createConnection } from 'node:net';

export interface RedisServer {
  url: string;
  port: number;
  /** stop it (SIGTERM: it writes its data first) */
  stop(): Promise<void>;
  /** stop it and start it again on the same port and data */
  restart(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

async function answers(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const c = createConnection({ port, host: '127.0.0.1' }, () => c.write('PING\r\n'));
    c.once('data', (d) => {
      c.destroy();
      ok(String(d).startsWith('+PONG'));
    });
    c.once('error', () => ok(false));
  });
}

export async function startRedis(dir: string): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess;
  const launch = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''],
      { stdio: 'ignore' },
    );
    const failed = new Promise<never>((_, fail) =>
      child.once('error', (e) => fail(new Error(`cannot start redis-server (${e.message}); install it: apt-get install redis-server`))),
    );
    for (let i = 0; i < 100; i++) {
      if (await Promise.race([answers(port), failed])) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server did not answer on port ${port}`);
  };
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((r) => {
      child.once('exit', () => r());
      child.kill('SIGTERM');
    });
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    async restart() {
      await stop();
      await launch();
    },
  };
}
