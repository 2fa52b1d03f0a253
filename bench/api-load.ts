/**
 * Child process of the API benchmark's load pass: autocannon (pinned version) against the dev HTTP host over
 * loopback, `connections` connections, every request with its own bearer token (taken in turn from the pool).
 * A separate process, so the load generator's CPU does not sit on the server's event loop.
 */
import autocannon from 'autocannon';
import { serveChild } from './lib/child.js';

export interface LoadInput {
  url: string;
  method: 'GET' | 'POST';
  body?: string;
  tokens: string[];
  connections: number;
  seconds: number;
}

export interface LoadResult {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

serveChild<LoadInput, LoadResult>(async ({ url, method, body, tokens, connections, seconds }) => {
  let next = 0;
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    requests: [
      {
        method,
        ...(body ? { body } : {}),
        setupRequest: (request) => ({
          ...request,
          headers: { ...request.headers, 'content-type': 'application/json', authorization: `Bearer ${tokens[next++ % tokens.length]}` },
        }),
      },
    ],
  });
  return {
    requests: result.requests.total,
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
});
