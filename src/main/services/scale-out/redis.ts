/** How scale-out reaches Redis: a URL (redis:// or rediss:// for TLS, with a password in it or given apart). */
import type { ConnectionOptions } from 'bullmq';

export interface RedisOptions {
  /** redis://[user:password@]host:port[/db] or rediss://… (TLS) */
  redis: string;
  /** a password kept out of the URL (and so out of `ps`): --redis-password-file */
  redisPassword?: string | undefined;
}

export function redisConnection(o: RedisOptions): ConnectionOptions {
  let url: URL;
  try {
    url = new URL(o.redis);
  } catch {
    throw new Error(`"${o.redis}" is not a Redis URL (redis://host:6379)`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new Error(`"${o.redis}" is not a Redis URL: use redis:// or rediss:// (TLS)`);
  return {
    url: o.redis,
    ...(o.redisPassword ? { password: o.redisPassword } : {}),
    // BullMQ's workers block on Redis: requests wait for a reconnection instead of failing (a Redis restart is survived)
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  };
}
