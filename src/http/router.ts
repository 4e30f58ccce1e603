import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { HttpError, sendError } from './http-error.js';
import { pathSegments } from './path.js';

/** Receives the path segments matched by `*` in the route's pattern. */
export type Handler = (req: IncomingMessage, res: ServerResponse, params: string[]) => unknown;

export interface Route {
  /** Path segments; `*` matches any one segment. */
  pattern: string[];
  methods: Partial<Record<string, Handler>>;
}

/** A table router: unknown paths answer 404, known paths with another method 405 with `Allow`. */
export function createRouter(routes: Route[]): RequestListener {
  return (req, res) => {
    try {
      const segments = pathSegments(req.url ?? '/');
      const route = routes.find((candidate) => matches(candidate.pattern, segments));
      if (route === undefined) throw new HttpError(404, 'not found');
      const handler = route.methods[req.method ?? ''];
      if (handler === undefined) {
        throw new HttpError(405, 'method not allowed', { allow: Object.keys(route.methods).join(', ') });
      }
      const params = route.pattern.flatMap((part, i) => (part === '*' ? [segments[i]!] : []));
      const result = handler(req, res, params);
      if (result instanceof Promise) result.catch((error: unknown) => sendError(res, error));
    } catch (error) {
      sendError(res, error);
    }
  };
}

function matches(pattern: string[], segments: string[]): boolean {
  if (pattern.length !== segments.length) return false;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '*' && pattern[i] !== segments[i]) return false;
  }
  return true;
}
