import { ValidationError } from '../../core/errors.js';
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

export function openRedisStore(value: string, timeoutMs: number): RedisStore {
  const url = checkRedisUrl(value);
  return new RedisStore(new ServerConnection(url.href, timeoutMs), { timeoutMs, grouped: false, name: 'Redis' });
}
