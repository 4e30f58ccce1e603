import { ValidationError } from '../../core/errors.js';

// Checked before anything is opened, and without loading the Redis client: a typo should be a
// usage error, not a store or cache that never becomes ready.

/** `redis://[user:password@]HOST:PORT[/DB]`. */
export function checkRedisUrl(value: string, option = '--store'): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(`${option} ${value}: not a URL; expected redis://HOST:PORT[/DB]`);
  }
  if (url.protocol !== 'redis:' || url.hostname === '' || !/^(\/\d{0,2})?$/.test(url.pathname) || url.search !== '') {
    throw new ValidationError(`${option} ${value}: expected redis://HOST:PORT[/DB], DB a number`);
  }
  return url;
}

/** `redis-cluster://HOST:PORT[,HOST:PORT…]`: seed nodes of a cluster, any of its nodes. */
export function checkClusterUrl(value: string, option = '--store'): string[] {
  const seeds = value.slice('redis-cluster://'.length).split(',');
  if (!value.startsWith('redis-cluster://') || seeds.some((seed) => !/^[^\s/:,@]+:\d{1,5}$/.test(seed))) {
    throw new ValidationError(`${option} ${value}: expected redis-cluster://HOST:PORT[,HOST:PORT…]`);
  }
  return seeds;
}

/** A --cache URL: only Redis can hold the answers shared by read nodes. */
export function checkCacheUrl(value: string): string {
  if (value.startsWith('redis-cluster://')) checkClusterUrl(value, '--cache');
  else if (value.startsWith('redis://')) checkRedisUrl(value, '--cache');
  else throw new ValidationError(`--cache ${value}: expected redis://HOST:PORT[/DB] or redis-cluster://HOST:PORT[,HOST:PORT…]`);
  return value;
}
