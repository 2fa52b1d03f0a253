/**
 * A loopback HTTP server that serves the registered HTTP functions (functions/registry.ts) the way the
 * Functions host would: route templates under `api/`, real `HttpRequest` and `InvocationContext` objects.
 * A dev/test fixture for the local sandbox and full-flow tests; the Function App never loads it.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import azureFunctions, { type HttpResponseInit } from '@azure/functions';
import type { RouteRegistration } from '../functions/registry.js';
// A CommonJS package whose classes Node's ESM loader cannot name-import.
const { HttpRequest, HttpResponse, InvocationContext } = azureFunctions;

interface CompiledRoute {
  registration: RouteRegistration;
  pattern: RegExp;
  paramNames: string[];
  /** Literal segments win over parameters, as in ASP.NET routing. */
  literalSegments: number;
}

export interface HttpHostOptions {
  routes: readonly RouteRegistration[];
  routePrefix: string;
  port?: number;
  /** Serve HTTPS with this certificate (the loopback cert the sandbox trusts), as the Function App does. */
  tls?: { cert: string; key: string };
  log?: (line: string) => void;
  /**
   * Sees each request before its handler; `'drop'` resets the connection without an answer (for outage
   * tests: the request never reached the API as far as the client can tell).
   */
  intercept?: (request: { method: string; path: string; body: Buffer }) => 'pass' | 'drop';
}

export interface RunningHttpHost {
  baseUrl: string;
  close(): Promise<void>;
}

export function compileRoute(registration: RouteRegistration, routePrefix: string): CompiledRoute {
  const paramNames: string[] = [];
  let literalSegments = 0;
  const segments = `${routePrefix}/${registration.route}`.split('/').filter(Boolean).map((segment) => {
    const param = /^\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]+)?(\?)?\}$/.exec(segment);
    if (!param) {
      literalSegments++;
      return `/${escapeRegExp(segment)}`;
    }
    paramNames.push(param[2]!);
    // `{*rest}` is a catch-all: the rest of the path, slashes included, possibly empty (the CORS preflight).
    if (param[1]) return '(?:/(.*))?';
    return param[3] ? '(?:/([^/]+))?' : '/([^/]+)';
  });
  return { registration, pattern: new RegExp(`^${segments.join('')}/?$`, 'i'), paramNames, literalSegments };
}

export async function startHttpHost(options: HttpHostOptions): Promise<RunningHttpHost> {
  const compiled = options.routes
    .map((route) => compileRoute(route, options.routePrefix))
    .sort((a, b) => b.literalSegments - a.literalSegments);
  const log = options.log ?? (() => undefined);

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    serve(req, res).catch((error: unknown) => {
      log(`[http] ${req.method} ${req.url} host error: ${String(error)}`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('host error');
    });
  };
  const server: Server = options.tls ? createTlsServer(options.tls, listener) : createServer(listener);
  // Node closes idle keep-alive sockets after 5 s, racing clients that reuse them (ECONNRESET); Azure's front
  // end keeps them for minutes, so do the same.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    const method = (req.method ?? 'GET').toUpperCase();
    const matches = compiled
      .map((route) => ({ route, match: route.pattern.exec(url.pathname) }))
      .filter((m): m is { route: CompiledRoute; match: RegExpExecArray } => m.match !== null);
    const found = matches.find((m) => (m.route.registration.methods as string[]).includes(method));
    if (!found) {
      res.writeHead(matches.length > 0 ? 405 : 404, { 'content-type': 'text/plain' }).end();
      return;
    }
    const params: Record<string, string> = {};
    found.route.paramNames.forEach((name, i) => {
      const value = found.match[i + 1];
      if (value !== undefined) params[name] = decodeURIComponent(value);
    });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    if (options.intercept?.({ method, path: url.pathname, body }) === 'drop') {
      req.socket.resetAndDestroy();
      return;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    // The Functions front end sets the client address header; do the same so audit rows carry an ip.
    headers['x-forwarded-for'] ??= req.socket.remoteAddress ?? '127.0.0.1';
    const request = new HttpRequest({
      method,
      url: url.toString(),
      headers,
      params,
      ...(body.length > 0 ? { body: { bytes: body } } : {}),
    });
    const name = found.route.registration.name;
    const context = new InvocationContext({
      functionName: name,
      invocationId: randomUUID(),
      logHandler: (level, ...args) => log(`[${name}] ${level}: ${args.map(String).join(' ')}`),
    });
    const result = await found.route.registration.handler(request, context);
    const response = result instanceof HttpResponse ? result : new HttpResponse((result ?? {}) as HttpResponseInit);
    const payload = Buffer.from(await response.arrayBuffer());
    const outHeaders: Record<string, string> = {};
    response.headers.forEach((value, key) => (outHeaders[key] = value));
    res.writeHead(response.status, outHeaders);
    res.end(payload);
    log(`[http] ${method} ${url.pathname} → ${response.status}`);
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
