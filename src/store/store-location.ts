import { ValidationError } from '../core/errors.js';

/** The stores a `--store` value can name: a URL scheme each, and a directory for the embedded store. */
export type StoreKind = 'embedded' | 'mongodb' | 'kafka' | 'redis' | 'redis-cluster';

const SCHEMES: Readonly<Record<string, StoreKind>> = {
  mongodb: 'mongodb',
  'mongodb+srv': 'mongodb',
  kafka: 'kafka',
  redis: 'redis',
  'redis-cluster': 'redis-cluster',
};

/**
 * Which store a `--store` value names. Anything shaped like `scheme://` must be a scheme some
 * store handles: taken for a directory name, `postgres://host` would quietly become an embedded
 * store in `./postgres:/host`.
 */
export function storeKind(location: string): StoreKind {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1];
  if (scheme === undefined) return 'embedded';
  const kind = SCHEMES[scheme.toLowerCase()];
  if (kind === undefined) {
    const known = Object.keys(SCHEMES).map((name) => `${name}://`).join(', ');
    throw new ValidationError(`no store handles ${scheme}:// (a store is ${known} or a directory)`);
  }
  return kind;
}
