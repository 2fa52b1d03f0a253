/**
 * Serves the built portal (portal/dist) on its own loopback origin, as static hosting does in Azure, plus the
 * `config.json` the portal reads at start-up. A different port from the API's is a different origin, so the
 * browser applies CORS to every API call, as it will in Azure.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';

export interface PortalHostOptions {
  /** The built portal (index.html, assets/). */
  dist: string;
  /** Served as /config.json (see portal/src/config.ts). */
  config: Record<string, unknown>;
  port?: number;
}

export interface RunningPortalHost {
  /** The portal's origin, e.g. `http://127.0.0.1:41234`. */
  origin: string;
  close(): Promise<void>;
}

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** The same policy as portal/staticwebapp.config.json, with the loopback stand-ins as the allowed hosts. */
function securityHeaders(): Record<string, string> {
  return {
    'content-security-policy':
      "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' https://127.0.0.1:*; " +
      "img-src 'self' data:; frame-src https://127.0.0.1:*; base-uri 'none'; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
}

export async function startPortalHost(options: PortalHostOptions): Promise<RunningPortalHost> {
  const root = normalize(options.dist);
  const config = JSON.stringify(options.config);
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/config.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', ...securityHeaders() }).end(config);
      return;
    }
    // Anything that is not an asset is the single page (client-side routes, the sign-in redirect).
    const file = path.startsWith('/assets/') ? normalize(join(root, path)) : join(root, 'index.html');
    if (!file.startsWith(root)) {
      res.writeHead(404).end();
      return;
    }
    readFile(file).then(
      (body) => {
        res.writeHead(200, { 'content-type': contentTypes[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache', ...securityHeaders() });
        res.end(body);
      },
      () => res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'),
    );
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
