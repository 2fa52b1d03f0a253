/**
 * A loopback TCP proxy for outage tests: put it between a client and a server, then `cut()` it (every open
 * connection is reset and new ones are reset on arrival, as when a network path goes away) and `restore()` it.
 * Optionally throttles the server → client direction, so a fast local backup takes long enough to cut mid-way.
 * It counts the connections it accepted (for PostgreSQL: one per pg_dump run). `startConnectProxy` is the HTTPS_PROXY
 * kind, counting the bytes a client uploads through it.
 */
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import type { AddressInfo } from 'node:net';

export interface TcpProxyOptions {
  target: { host: string; port: number };
  /** Limit on bytes per second from the server to the client; default none. */
  bytesPerSecond?: number;
  /** Count the connections whose client sends these bytes within its first 4 KiB (e.g. a startup packet's name). */
  countConnectionsSending?: Buffer;
}

export interface TcpProxy {
  host: string;
  port: number;
  /** Connections accepted while not cut. */
  readonly connections: number;
  /** Of those, the ones whose client sent `countConnectionsSending` (0 without that option). */
  readonly connectionsSending: number;
  readonly isCut: boolean;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** Delays chunks so the stream never runs faster than `bytesPerSecond`. */
function throttle(bytesPerSecond: number): Transform {
  const started = Date.now();
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      sent += chunk.length;
      const due = started + (sent / bytesPerSecond) * 1000;
      setTimeout(() => callback(null, chunk), Math.max(0, due - Date.now()));
    },
  });
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let cut = false;
  let connections = 0;
  let connectionsSending = 0;
  const server: Server = createServer((client) => {
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    connections += 1;
    const upstream = connect(options.target.port, options.target.host);
    open.add(client);
    open.add(upstream);
    if (options.countConnectionsSending) {
      const marker = options.countConnectionsSending;
      let head = Buffer.alloc(0);
      const look = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const found = head.includes(marker);
        if (found) connectionsSending += 1;
        if (found || head.length > 4096) client.off('data', look);
      };
      client.on('data', look);
    }
    const drop = () => {
      for (const socket of [client, upstream]) {
        open.delete(socket);
        socket.destroy();
      }
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    if (options.bytesPerSecond) upstream.pipe(throttle(options.bytesPerSecond)).pipe(client);
    else upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    get connections() {
      return connections;
    },
    get connectionsSending() {
      return connectionsSending;
    },
    get isCut() {
      return cut;
    },
    cut() {
      cut = true;
      for (const socket of open) socket.resetAndDestroy();
      open.clear();
    },
    restore() {
      cut = false;
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ConnectProxyOptions {
  /** Limit on bytes per second from the client to the server, per tunnel; default none. */
  bytesPerSecond?: number;
}

export interface ConnectProxy {
  /** For HTTPS_PROXY: `http://127.0.0.1:<port>`. */
  url: string;
  /** Bytes the clients sent through tunnels (TLS records, headers and bodies alike) since the last reset. */
  readonly bytesUp: number;
  /** Tunnels opened since the last reset. */
  readonly tunnels: number;
  /** Tunnels whose server side is still open (bytes a dead client sent may still be on their way). */
  readonly openTunnels: number;
  resetCounts(): void;
  close(): Promise<void>;
}

/**
 * An HTTP CONNECT proxy (what HTTPS_PROXY points at) that counts the bytes clients send through it: the Azure SDK
 * honours HTTPS_PROXY, so a runner started with it sends its Blob Storage traffic here, end-to-end TLS untouched,
 * and a test can measure what was uploaded. Optionally throttles the upload direction. As a network does, it still
 * delivers what a client sent before it died (a killed process's socket is closed, its sent bytes are not lost),
 * then closes the tunnel: `openTunnels` reaching 0 says everything sent has arrived.
 */
export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const open = new Set<Socket>();
  let bytesUp = 0;
  let tunnels = 0;
  let openTunnels = 0;
  const server = createHttpServer((_request, response) => {
    response.writeHead(405).end('CONNECT only');
  });
  server.on('connect', (request: IncomingMessage, client: Socket, head: Buffer) => {
    const [host, port] = (request.url ?? '').split(':');
    const upstream = connect(Number(port), host!);
    tunnels += 1;
    openTunnels += 1;
    open.add(client).add(upstream);
    const destroyBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', destroyBoth).on('close', () => open.delete(client));
    upstream.on('error', destroyBoth).on('close', () => {
      openTunnels -= 1;
      open.delete(upstream);
      client.destroy();
    });
    upstream.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytesUp += chunk.length;
          callback(null, chunk);
        },
      });
      if (head.length > 0) counter.write(head);
      // The client's end travels through the throttle: the server gets every byte, then the end of the stream.
      const up = options.bytesPerSecond ? client.pipe(throttle(options.bytesPerSecond)).pipe(counter) : client.pipe(counter);
      up.pipe(upstream);
      upstream.pipe(client).on('error', () => undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get bytesUp() {
      return bytesUp;
    },
    get tunnels() {
      return tunnels;
    },
    get openTunnels() {
      return openTunnels;
    },
    resetCounts() {
      bytesUp = 0;
      tunnels = 0;
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
