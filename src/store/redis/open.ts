import { ClusterConnection } from './cluster-connection.js';
import { ServerConnection } from './connection.js';
import { RedisStore } from './redis-store.js';
import { checkClusterUrl, checkRedisUrl } from './url.js';

export function openRedisStore(value: string, timeoutMs: number, wait = 0): RedisStore {
  const url = checkRedisUrl(value);
  return new RedisStore(new ServerConnection(url.href, timeoutMs), { timeoutMs, wait, grouped: false, name: 'Redis' });
}

export function openRedisClusterStore(value: string, timeoutMs: number, wait = 0): RedisStore {
  const seeds = checkClusterUrl(value);
  return new RedisStore(new ClusterConnection(seeds, timeoutMs), { timeoutMs, wait, grouped: true, name: 'Redis Cluster' });
}
