/**
 * The null target: a minimal loopback HTTPS endpoint that speaks just enough of the Blob service for an upload
 * (Put Blob, Put Block, Put Block List) and discards the bytes as fast as Node can read them, so the benchmark
 * can measure the client's own limit (Azurite is slower than the client on this machine). It keeps only the
 * size of each staged block, to answer `GET /__stored?path=…` with the committed blob's size.
 *
 *   node bench/lib/null-blob-server.mjs <cert.pem> <key.pem>    prints "null-blob-server listening on <port>"
 *
 * Plain JavaScript (no loader): its CPU is measured from /proc around each variant, as Azurite's is.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [certPath, keyPath] = process.argv.slice(2);
/** Staged block sizes by blob path and block id; committed sizes by blob path. */
const staged = new Map();
const committed = new Map();

function respond(res, status, headers = {}, body) {
  res.writeHead(status, {
    'x-ms-request-id': '00000000-0000-0000-0000-000000000000',
    'x-ms-version': '2025-01-05',
    date: new Date().toUTCString(),
    ...headers,
  });
  res.end(body);
}

const server = createServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) }, (req, res) => {
  const url = new URL(req.url, 'https://127.0.0.1');
  if (req.method === 'GET' && url.pathname === '/__stored') {
    const size = committed.get(url.searchParams.get('path'));
    respond(res, size === undefined ? 404 : 200, { 'content-type': 'application/json' }, JSON.stringify({ size }));
    return;
  }
  const comp = url.searchParams.get('comp');
  if (req.method === 'PUT' && comp === null) {
    // Put Blob: uploadFile sends a small file in one request.
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      committed.set(decodeURIComponent(url.pathname), bytes);
      respond(res, 201, { etag: '"0x8DD000000000000"', 'last-modified': new Date().toUTCString(), 'x-ms-request-server-encrypted': 'true', 'content-length': '0' });
    });
    return;
  }
  if (req.method !== 'PUT' || (comp !== 'block' && comp !== 'blocklist')) {
    req.resume();
    respond(res, 400, { 'x-ms-error-code': 'UnsupportedByNullTarget' });
    return;
  }
  const blob = url.pathname;
  if (comp === 'block') {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      let blocks = staged.get(blob);
      if (!blocks) staged.set(blob, (blocks = new Map()));
      blocks.set(url.searchParams.get('blockid'), bytes);
      respond(res, 201, { 'x-ms-request-server-encrypted': 'true', 'content-length': '0' });
    });
    return;
  }
  let xml = '';
  req.setEncoding('utf8');
  req.on('data', (text) => (xml += text));
  req.on('end', () => {
    const blocks = staged.get(blob) ?? new Map();
    let size = 0;
    for (const match of xml.matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]*)</g)) {
      const bytes = blocks.get(match[1]);
      if (bytes === undefined) {
        respond(res, 400, { 'x-ms-error-code': 'InvalidBlockList', 'content-length': '0' });
        return;
      }
      size += bytes;
    }
    committed.set(decodeURIComponent(blob), size);
    staged.delete(blob);
    respond(res, 201, {
      etag: '"0x8DD000000000000"',
      'last-modified': new Date().toUTCString(),
      'x-ms-request-server-encrypted': 'true',
      'content-length': '0',
    });
  });
});

server.listen(0, '127.0.0.1', () => console.log(`null-blob-server listening on ${server.address().port}`));
