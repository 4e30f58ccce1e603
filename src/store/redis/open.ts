import { ValidationError } from '../../core/errors.js';
import { ClusterConnection } from './cluster-connection.js';
import { ServerConnection } from './connection.js';
import { RedisStore } from './redis-store.js';

/**
 * `redis://[user:password@]HOST:PORT[/DB]`, checked before anything is opened: a typo should
 * be a usage error, not a store that never becomes ready.
 */
export function checkRedisUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(`--store ${value}: not a URL; expected redis://HOST:PORT[/DB]`);
  }
  if (url.protocol !== 'redis:' || url.hostname === '' || !/^(\/\d{0,2})?$/.test(url.pathname) || url.search !== '') {
    throw new ValidationError(`--store ${value}: expected redis://HOST:PORT[/DB], DB a number`);
  }
  return url;
}

export function openRedisStore(value: string, timeoutMs: number, wait = 0): RedisStore {
  const url = checkRedisUrl(value);
  return new RedisStore(new ServerConnection(url.href, timeoutMs), { timeoutMs, wait, grouped: false, name: 'Redis' });
}

/** `redis-cluster://HOST:PORT[,HOST:PORT…]`: seed nodes of a cluster, any of its nodes. */
export function checkClusterUrl(value: string): string[] {
  const seeds = value.slice('redis-cluster://'.length).split(',');
  if (!value.startsWith('redis-cluster://') || seeds.some((seed) => !/^[^\s/:,@]+:\d{1,5}$/.test(seed))) {
    throw new ValidationError(`--store ${value}: expected redis-cluster://HOST:PORT[,HOST:PORT…]`);
  }
  return seeds;
}

export function openRedisClusterStore(value: string, timeoutMs: number, wait = 0): RedisStore {
  const seeds = checkClusterUrl(value);
  return new RedisStore(new ClusterConnection(seeds, timeoutMs), { timeoutMs, wait, grouped: true, name: 'Redis Cluster' });
}
