import type { ServerOptions } from 'node:http';

export interface TimeoutOptions {
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

// Node looks for requests past their deadline only every connectionsCheckingInterval (30 s by
// default), so a 30 s timeout could let a slow client hold its connection for up to 60 s.
const MAX_CHECK_INTERVAL_MS = 1000;
const MIN_CHECK_INTERVAL_MS = 10;

/** The node:http server options for the daemons' timeouts and limits. */
export function httpServerOptions({ requestTimeoutMs, keepAliveTimeoutMs }: TimeoutOptions): ServerOptions {
  // Node throws on a fractional timeout (`--request-timeout 1.5ms`).
  const requestTimeout = Math.round(requestTimeoutMs);
  // A quarter of the timeout: a slow client is cut off at most 25 % (and at most 1 s) late.
  const checkEvery = Math.min(MAX_CHECK_INTERVAL_MS, Math.max(MIN_CHECK_INTERVAL_MS, Math.round(requestTimeout / 4)));
  return {
    requestTimeout,
    // Node refuses a headersTimeout above requestTimeout; 0 turns both off.
    headersTimeout: Math.min(requestTimeout, 60_000),
    connectionsCheckingInterval: requestTimeout > 0 ? checkEvery : MAX_CHECK_INTERVAL_MS,
    // Node closes an idle keep-alive connection about 1 s after this (a margin against clients
    // reusing a connection the server is closing).
    keepAliveTimeout: Math.round(keepAliveTimeoutMs),
    // Node answers a request without Host with a bare 400; the router answers it in JSON.
    requireHostHeader: false,
  };
}
