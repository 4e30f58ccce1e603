import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { HttpError, sendError } from './http-error.js';
import { pathSegments } from './path.js';

/** Receives the path segments matched by the parameters (`:name` or `*`) of the route's pattern. */
export type Handler = (req: IncomingMessage, res: ServerResponse, params: string[]) => unknown;

export interface Route {
  /** Path segments; `:name` (or `*`) matches any one segment. Joined by `/`, it names the route in metrics. */
  pattern: string[];
  methods: Partial<Record<string, Handler>>;
}

/** Hears every answered request; a label for each route is asked for once, when the router is built. */
export interface RequestObserver {
  /** The recorder of one route, labelled by its pattern (`/events/:domain/:type`), or `unmatched` for 404s. */
  route(label: string): RouteRecorder;
}

export interface RouteRecorder {
  /** `status` is 0 when the client went away before the answer was sent. */
  record(method: string, status: number, seconds: number): void;
}

/**
 * A table router: unknown paths answer 404, known paths with another method 405 with `Allow`.
 * With an observer, every routed request is timed from here until its response closes.
 */
export function createRouter(routes: Route[], observer?: RequestObserver): RequestListener {
  // Everything that does not depend on the request is worked out here, once.
  const compiled = routes.map((route) => ({
    ...route,
    parameters: route.pattern.flatMap((part, i) => (isParameter(part) ? [i] : [])),
    recorder: observer?.route(`/${route.pattern.join('/')}`),
  }));
  const unmatched = observer?.route('unmatched');
  return (req, res) => {
    try {
      const segments = pathSegments(req.url ?? '/');
      const route = find(compiled, segments);
      if (observer) watch(res, route === undefined ? unmatched! : route.recorder!);
      // HTTP/1.1 requires Host (RFC 9112 3.2); Node's own check answers without a JSON body.
      if (req.headers.host === undefined && req.httpVersion === '1.1') throw new HttpError(400, 'Host header missing');
      if (route === undefined) throw new HttpError(404, 'not found');
      const handler = route.methods[req.method ?? ''];
      if (handler === undefined) {
        throw new HttpError(405, 'method not allowed', { allow: Object.keys(route.methods).join(', ') });
      }
      const params = route.parameters.map((i) => segments[i]!);
      const result = handler(req, res, params);
      if (result instanceof Promise) result.catch((error: unknown) => sendError(res, error));
    } catch (error) {
      sendError(res, error);
    }
  };
}

function find<R extends Route>(routes: R[], segments: string[]): R | undefined {
  for (const route of routes) if (matches(route.pattern, segments)) return route;
  return undefined;
}

function matches(pattern: string[], segments: string[]): boolean {
  if (pattern.length !== segments.length) return false;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== segments[i] && !isParameter(pattern[i]!)) return false;
  }
  return true;
}

function isParameter(part: string): boolean {
  return part === '*' || part.startsWith(':');
}

const RECORDER = Symbol('recorder');
const STARTED = Symbol('started');
type WatchedResponse = ServerResponse & { [RECORDER]: RouteRecorder; [STARTED]: number };

// The state rides on the response and one shared listener reads it: no closure per request.
function watch(res: ServerResponse, recorder: RouteRecorder): void {
  const watched = res as WatchedResponse;
  watched[RECORDER] = recorder;
  watched[STARTED] = performance.now();
  res.on('close', recordAnswer);
}

function recordAnswer(this: WatchedResponse): void {
  const seconds = (performance.now() - this[STARTED]) / 1000;
  this[RECORDER].record(this.req.method ?? '', this.writableFinished ? this.statusCode : 0, seconds);
}
