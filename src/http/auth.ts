import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.js';
import type { Handler, Route } from './router.js';

/**
 * Checks `Authorization: Bearer <token>` against a configured token. Both sides are hashed
 * first, so the comparison takes the same time whatever the client sent, its length included.
 */
export function bearerCheck(token: string): (req: IncomingMessage) => void {
  const matches = bearerMatcher(token);
  return (req) => {
    const header = req.headers.authorization;
    if (!matches(header)) {
      throw new HttpError(401, header === undefined ? 'a bearer token is required' : 'invalid bearer token', { 'www-authenticate': 'Bearer' });
    }
  };
}

/** Whether an `Authorization` value (HTTP header, gRPC metadata) carries `token` as a Bearer credential. */
export function bearerMatcher(token: string): (authorization: string | undefined) => boolean {
  const expected = digest(token);
  return (authorization) => {
    const presented = authorization === undefined ? '' : bearerToken(authorization);
    // A missing credential is hashed and compared like a wrong one: no shortcut to time.
    return timingSafeEqual(digest(presented), expected) && presented !== '';
  };
}

/** The same routes, each handler first checking the token when one is set. */
export function requireToken(routes: Route[], token: string | undefined): Route[] {
  if (!token) return routes;
  const check = bearerCheck(token);
  return routes.map((route) => ({
    ...route,
    methods: Object.fromEntries(
      Object.entries(route.methods).map(([method, handler]): [string, Handler] => [
        method,
        (req, res, params) => {
          check(req);
          return handler!(req, res, params);
        },
      ]),
    ),
  }));
}

/** The token of a Bearer credential; the scheme name is case-insensitive (RFC 9110, section 11.1). */
function bearerToken(header: string): string {
  const match = /^bearer +(\S+) *$/i.exec(header);
  return match === null ? '' : match[1]!;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
