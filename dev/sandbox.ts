/**
 * `npm run sandbox`: one backup request walked end to end on this machine (see dev/stack.ts for what runs).
 * Each step prints one line; the run ends with a summary and exit 0, or names the failed step and exits 1.
 *
 *   --serve            keep everything running afterwards and print tokens and curl commands
 *   --source URL       back up a real PostgreSQL database (postgres://user[:password]@host[:port]/db) with
 *                      pg_dump, instead of the embedded demo database
 *   --sanitized        walk a sanitized copy instead: a demo database with personal data on a real PostgreSQL
 *                      server (--source's server, else PG_URL), registered with masking rules; the copy is restored
 *                      elsewhere and checked to hold none of the original values
 *   --compression X    none | gzip | zstd (default gzip)
 *   --encrypt          alice registers an age key (age-keygen) and asks for an age-encrypted copy, which is
 *                      decrypted with the `age` CLI before the restore
 *   --cors-origin URL  allow a browser page on this origin (e.g. a portal on http://127.0.0.1:5173) to call
 *                      the API; repeatable. Default: the CORS_ORIGINS setting, if set
 *   --verbose          print the hosts' logs too
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { ensureLoopbackCert, trustLoopbackCertInChildProcesses } from './tls.js';

const usage = `Usage: npm run sandbox -- [--serve] [--source postgres://user@host:port/db] [--sanitized] [--compression none|gzip|zstd] [--encrypt] [--cors-origin URL]... [--verbose]

Runs one backup request end to end on local stand-ins: Azurite (Blob, HTTPS + OAuth), a local OIDC issuer
(Entra), PGlite (the store), a local AMQP broker (Service Bus), the real HTTP handlers, the real backupJob
orchestration and a real runner agent. Prints one line per step and exits 0 when every step passed.`;

// `npm run sandbox -- --help | head` (or the whole run piped to head) closes stdout early: the run goes on,
// and its exit code still tells whether every step passed.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
});

const { values: args } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    source: { type: 'string' },
    sanitized: { type: 'boolean', default: false },
    compression: { type: 'string', default: 'gzip' },
    verbose: { type: 'boolean', default: false },
    encrypt: { type: 'boolean', default: false },
    'cors-origin': { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(usage);
  process.exit(0);
}
if (args.sanitized && !args.source && !process.env.PG_URL) {
  console.error(`--sanitized needs a real PostgreSQL server (pg_dump, pg_restore, a scratch database): pass --source postgres://user@host/postgres or set PG_URL\n\n${usage}`);
  process.exit(2);
}
if (!['none', 'gzip', 'zstd'].includes(args.compression!)) {
  console.error(`--compression must be none, gzip or zstd (got ${args.compression})\n\n${usage}`);
  process.exit(2);
}

// Node reads NODE_EXTRA_CA_CERTS only at start-up: run again with the loopback certificate trusted, so every
// HTTPS client here (Azure SDKs, fetch) verifies the stand-ins' certificate instead of skipping checks.
if (!process.env.DBDIST_SANDBOX_CHILD) {
  ensureLoopbackCert();
  trustLoopbackCertInChildProcesses();
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, DBDIST_SANDBOX_CHILD: '1' },
  });
  process.exit(child.status ?? 1);
}

const started = Date.now();
// DBDIST_SANDBOX_MEMORY=1 (bench/sandbox-memory.ts) adds this process's memory to every line, in MiB.
const memory = () => {
  if (!process.env.DBDIST_SANDBOX_MEMORY) return '';
  const used = process.memoryUsage();
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  return ` {rss ${mib(used.rss)} heap ${mib(used.heapUsed)}/${mib(used.heapTotal)} external ${mib(used.external)} arrayBuffers ${mib(used.arrayBuffers)}}`;
};
const line = (label: string, text: string) => console.log(`${`[${((Date.now() - started) / 1000).toFixed(1)}s]`.padEnd(8)} ${label.padEnd(12)} ${text}${memory()}`);
line('starting', 'loading dbdist and its local stand-ins (the first run compiles the TypeScript: allow ~10 s)');
const { startLocalStack, readAll } = await import('./stack.js');
const { startEmbeddedSource, restoreAndFingerprint } = await import('./embedded-source.js');
const { createPostgresEngine } = await import('../runner-agent/engines/postgres.js');
const { createLogger } = await import('../runner-agent/logger.js');
const { createDecompressStream } = await import('../runner-agent/pipeline/compression.js');
const { verifyDownload } = await import('../runner-agent/verify.js');
const { startWebhookReceiver } = await import('./webhook-receiver.js');
const { dispatchNotifications } = await import('../services/notifications.js');
const { webhookChannel } = await import('../services/notification-channels.js');
type Compression = import('../shared/contracts/common.js').Compression;

type Json = Record<string, any>;
let step = 'start the local stand-ins';
function expectStatus(response: { status: number; text: string }, expected: number): void {
  if (response.status !== expected) throw new Error(`expected HTTP ${expected}, got ${response.status}: ${response.text.slice(0, 400)}`);
}

let portal: { dist: string } | undefined;
if (args.serve) {
  line('portal', 'building the portal (portal/dist)');
  const { buildPortal } = await import('../portal/build.js');
  portal = { dist: await buildPortal() };
}
const stack = await startLocalStack({
  progress: (text) => line('starting', text),
  log: args.verbose ? (l) => console.log(`         · ${l}`) : undefined,
  ...(args['cors-origin'] ? { corsOrigins: args['cors-origin'] } : {}),
  ...(portal ? { portal } : {}),
});
const { startSanitizedDemo } = await import('./sanitized-demo.js');
const sanitized = args.sanitized ? await startSanitizedDemo(args.source ?? process.env.PG_URL!) : undefined;
if (!args.source && !sanitized) line('starting', 'the embedded demo database (PGlite, seeding 2000 customers and 6000 orders)');
const source = args.source || sanitized ? undefined : await startEmbeddedSource();
let exitCode = 0;
try {
  line('stand-ins', `API ${stack.apiBaseUrl}, Azurite ${stack.azurite.blobEndpoint}, OIDC ${stack.issuer.baseUrl}, AMQP 127.0.0.1:${stack.broker.port}`);

  step = 'register the source server and database (Admin)';
  const sourceUrl = sanitized ? undefined : args.source ? new URL(args.source) : undefined;
  const databaseName = sanitized?.databaseName ?? (sourceUrl ? decodeURIComponent(sourceUrl.pathname.slice(1)) : source!.databaseName);
  const server = await stack.api<Json>('POST', '/api/servers', {
    token: stack.tokens.admin,
    body: { name: sourceUrl?.host ?? (sanitized ? sanitized.settings.host : 'embedded-demo'), host: sourceUrl?.host ?? (sanitized ? sanitized.settings.host : 'embedded'), engine: 'postgres' },
  });
  expectStatus(server, 201);
  const database = await stack.api<Json>('POST', `/api/servers/${server.body.id}/databases`, {
    token: stack.tokens.admin,
    body: {
      name: databaseName,
      requesterGroupIds: [stack.requesterGroupId],
      ...(sanitized ? { policy: { distribution: 'sanitized', masking: sanitized.masking } } : {}),
    },
  });
  expectStatus(database, 201);
  line('registered', `server ${server.body.id} (postgres), database "${databaseName}" ${database.body.id}${sanitized ? `, distribution sanitized (rules v${sanitized.masking.version})` : ''}`);

  step = 'start the runner agent';
  const engine = sanitized
    ? createPostgresEngine(sanitized.settings)
    : sourceUrl
    ? createPostgresEngine({
        host: sourceUrl.hostname,
        port: Number(sourceUrl.port || 5432),
        user: decodeURIComponent(sourceUrl.username || 'postgres'),
        ...(sourceUrl.password ? { password: decodeURIComponent(sourceUrl.password) } : {}),
        maintenanceDatabase: 'postgres',
      })
    : source!.engine;
  const runner = await stack.startRunner({
    serverId: server.body.id,
    engine,
    ...(sanitized ? { scratch: sanitized.scratch } : {}),
    ...(args.verbose ? { logger: createLogger({ level: 'info' }) } : {}),
  });
  line('runner', `${runner.runnerId} listening on subscription runner-${server.body.id} (${await engine.check()})`);

  // --encrypt: keys made as people make them, with age-keygen; only the public halves reach the API.
  const keyDir = args.encrypt ? mkdtempSync(join(tmpdir(), 'dbdist-sandbox-keys-')) : '';
  const ageKey = (name: string) => {
    const file = join(keyDir, `${name}.txt`);
    execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
    return { file, recipient: execFileSync('age-keygen', ['-y', file]).toString().trim() };
  };
  const aliceKey = args.encrypt ? ageKey('alice') : undefined;
  if (aliceKey) {
    step = "register alice's age public key (Requester)";
    const recovery = ageKey('recovery');
    stack.deps.recoveryRecipients = [recovery.recipient]; // ENCRYPTION_RECOVERY_RECIPIENTS in Azure
    const put = await stack.api<Json>('PUT', '/api/me/recipients', { token: stack.tokens.alice, body: { recipients: [aliceKey.recipient] } });
    expectStatus(put, 200);
    line('key', `alice registered ${aliceKey.recipient} (fingerprint ${put.body.recipients[0].fingerprint}); recovery key ${recovery.recipient}`);
  }

  step = 'request a backup (Requester)';
  const created = await stack.api<Json>('POST', '/api/jobs', {
    token: stack.tokens.alice,
    body: { databaseId: database.body.id, options: { compression: args.compression, ...(aliceKey ? { encryption: 'age' } : {}) }, reason: 'sandbox walkthrough' },
  });
  expectStatus(created, 202);
  const jobId: string = created.body.id;
  line('requested', `job ${jobId} by alice (${created.body.status})${aliceKey ? `, encrypted to ${JSON.stringify(created.body.recipients)}` : ''}`);

  step = 'follow the job until its backup is available';
  const seen = new Set<string>();
  let job: Json = created.body;
  const deadline = Date.now() + 120_000;
  while (job.status !== 'Available') {
    if (['Failed', 'Cancelled', 'Expired'].includes(job.status)) {
      throw new Error(`the job ended ${job.status}: ${JSON.stringify(job.error)}`);
    }
    if (Date.now() > deadline) throw new Error(`still ${job.status} after 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const current = await stack.api<Json>('GET', `/api/jobs/${jobId}`, { token: stack.tokens.alice });
    expectStatus(current, 200);
    job = current.body;
    const key = `${job.status}:${job.progress?.percent ?? ''}`;
    if (!seen.has(key)) {
      seen.add(key);
      const progress = job.progress ? ` ${job.progress.percent}% (${job.progress.bytes} bytes)` : '';
      line(job.status.toLowerCase(), `job ${job.status}${progress}`);
    }
  }
  line('verified', `blob verified: ${job.sizeBytes} bytes, sha256 ${job.sha256}`);

  step = 'get the download link (Requester)';
  const link = await stack.api<Json>('POST', `/api/jobs/${jobId}/download-link`, { token: stack.tokens.alice, body: { ttlMinutes: 15 } });
  expectStatus(link, 200);
  line('link', `read-only SAS for ${link.body.fileName}, expires ${link.body.expiresAt}`);

  step = 'download the backup with the SAS link and check its SHA-256';
  const download = await fetch(link.body.url);
  if (download.status !== 200) throw new Error(`download answered ${download.status}`);
  const bytes = await readAll(download.body!);
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== job.sha256 || bytes.length !== job.sizeBytes) {
    throw new Error(`downloaded ${bytes.length} bytes with sha256 ${digest}; the job says ${job.sizeBytes} bytes, ${job.sha256}`);
  }
  line('downloaded', `${bytes.length} bytes, sha256 matches (${download.headers.get('content-disposition')})`);

  step = 'prove the download offline: sidecars, the signed manifest (dbdist-runner verify) and sha256sum -c';
  const proof = await proveDownload(stack, link.body, bytes);
  for (const proved of proof) line('proof', proved);

  let stored = bytes;
  if (aliceKey) {
    step = "decrypt the copy with the age CLI and alice's key";
    const opened = spawnSync('age', ['-d', '-i', aliceKey.file], { input: bytes, maxBuffer: 1024 ** 3 });
    if (opened.status !== 0) throw new Error(`age -d failed: ${opened.stderr.toString().trim()}`);
    stored = opened.stdout;
    line('decrypted', `age -d -i ${aliceKey.file} ${link.body.fileName}: ${stored.length} bytes`);
  }

  if (sanitized) {
    step = 'restore the sanitized copy elsewhere and check that it holds no original value';
    if (job.maskingVersion !== sanitized.masking.version) throw new Error(`the job records masking version ${job.maskingVersion}`);
    const decompress = createDecompressStream(args.compression as Compression);
    const plain = decompress ? await readAll(Readable.from([stored]).pipe(decompress)) : stored;
    line('sanitized', `masking rules v${job.maskingVersion}: ${await sanitized.check(plain)}`);
  }

  if (source) {
    step = 'restore the backup into a fresh embedded database and compare the data';
    // Decompressed with the runner's own stage, as an operator would with `dbdist-runner decrypt --decompress`.
    const decompress = createDecompressStream(args.compression as Compression);
    const plain = decompress ? await readAll(Readable.from([stored]).pipe(decompress)) : stored;
    const [original, restored] = await Promise.all([source.fingerprint(), restoreAndFingerprint(plain)]);
    if (original.digest !== restored.digest) throw new Error(`restored data differs: ${JSON.stringify(restored.rows)} vs ${JSON.stringify(original.rows)}`);
    line('restored', `rows ${JSON.stringify(restored.rows)}, data digest identical (the demo's pg_dump writes plain SQL: dev/README.md)`);
  }

  step = "refuse a link to someone else's backup (and audit the attempt)";
  const denied = await stack.api<Json>('POST', `/api/jobs/${jobId}/download-link`, { token: stack.tokens.mallory, body: {} });
  expectStatus(denied, 403);
  line('refused', `mallory asked for a link to alice's job: ${denied.status} ${denied.body.title}`);

  step = 'list the audit trail of the job (Auditor)';
  const audit = await stack.api<Json>('GET', `/api/audit?jobId=${jobId}&limit=200`, { token: stack.tokens.auditor });
  expectStatus(audit, 200);
  const rows: Json[] = [...audit.body.items].reverse();
  for (const row of rows) line('audit', `${row.at} ${row.action.padEnd(22)} ${row.actorType}:${row.actorName ?? row.actorId}`);
  for (const required of ['job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'sas.download_issued', 'sas.download_denied']) {
    if (!rows.some((row) => row.action === required)) throw new Error(`no ${required} audit row`);
  }

  step = 'deliver the notifications to a local webhook (as the notify timer does) and check what alice was told';
  const webhookSecret = randomBytes(32).toString('hex');
  const receiver = await startWebhookReceiver({ secret: webhookSecret });
  try {
    await dispatchNotifications({ ...stack.deps, notifications: [webhookChannel({ url: receiver.url, secret: webhookSecret, name: 'sandbox-webhook' })] });
    const told = receiver.received.find((event) => event.type === 'dbdist.job.available' && event.jobId === jobId);
    if (!told) throw new Error(`no dbdist.job.available notification for job ${jobId} (received ${receiver.received.length}, refused ${receiver.refused})`);
    line('notified', `${told.audience} ${told.requester?.upn ?? told.requester?.oid}: "${told.text}" (webhook signature checked)`);
  } finally {
    await receiver.close();
  }

  step = 'scrape GET /api/metrics (Prometheus text) as the auditor';
  const metrics = await stack.api<string>('GET', '/api/metrics', { token: stack.tokens.auditor });
  expectStatus(metrics, 200);
  const shown = metrics.text.split('\n').filter((row) => /^dbdist_(jobs|backup_bytes_stored|sas_issued_total|last_good_backup_age_seconds)\{?/.test(row));
  for (const row of shown.slice(0, 6)) line('metrics', row);

  line('summary', `PASS: job ${jobId} went Pending → Queued → Running → Verifying → Available; ${bytes.length} bytes downloaded and verified; ${rows.length} audit rows`);
  for (const proved of proof) line('summary', proved);

  if (args.serve) {
    const api = stack.apiBaseUrl;
    console.log(`
Portal: ${stack.portalOrigin}/  (sign in as alice, approver, auditor, admin or mallory on the local issuer's page)
  The stand-ins use a self-signed loopback certificate: trust ${ensureLoopbackCert().certPath} in your browser, or open
  ${stack.apiBaseUrl}/api/health/live, ${stack.issuer.baseUrl} and ${stack.azurite.blobEndpoint} once and accept it.

Serving until Ctrl-C. The API trusts the loopback certificate at ${ensureLoopbackCert().certPath}:
  export CURL_CA_BUNDLE=${ensureLoopbackCert().certPath}
  export ADMIN='${stack.tokens.admin}'
  export ALICE='${stack.tokens.alice}'
  export AUDITOR='${stack.tokens.auditor}'
  curl -s ${api}/api/jobs -H "Authorization: Bearer $ALICE"
  curl -s -X POST ${api}/api/jobs -H "Authorization: Bearer $ALICE" -H 'content-type: application/json' -d '{"databaseId":"${database.body.id}"}'
  curl -s -X POST ${api}/api/jobs/${jobId}/download-link -H "Authorization: Bearer $ALICE" -H 'content-type: application/json' -d '{}'
  curl -s "${api}/api/audit?format=csv" -H "Authorization: Bearer $AUDITOR"
  curl -s ${api}/api/openapi.json`);

    // The real runner as its own process: its own server entry (a PostgreSQL the runner reaches with pg_dump:
    // --source's, else 127.0.0.1:5432 as postgres), an app registration at the local issuer, a ready config.
    const { prepareRunnerProcess } = await import('./runner-process.js');
    const { join } = await import('node:path');
    const pgTarget = sourceUrl ?? new URL('postgres://postgres@127.0.0.1:5432/postgres');
    const external = await stack.api<Json>('POST', '/api/servers', {
      token: stack.tokens.admin,
      body: { name: 'runner-process', host: pgTarget.host, engine: 'postgres' },
    });
    expectStatus(external, 201);
    const externalDatabase = await stack.api<Json>('POST', `/api/servers/${external.body.id}/databases`, {
      token: stack.tokens.admin,
      body: { name: decodeURIComponent(pgTarget.pathname.slice(1)) || 'postgres', requesterGroupIds: [stack.requesterGroupId] },
    });
    expectStatus(externalDatabase, 201);
    const setup = await prepareRunnerProcess(stack, {
      serverId: external.body.id,
      dir: join(process.cwd(), '.tmp', 'sandbox-runner'),
      runnerId: 'sandbox-runner',
      postgres: {
        host: pgTarget.hostname,
        port: Number(pgTarget.port || 5432),
        user: decodeURIComponent(pgTarget.username || 'postgres'),
        ...(pgTarget.password ? { password: decodeURIComponent(pgTarget.password) } : {}),
      },
    });
    console.log(`
The real runner CLI as its own process (MSAL with a certificate at the local issuer, Service Bus, pg_dump):
  config ${setup.configPath} (server ${external.body.id}, subscription ${setup.subscription})
  ${setup.commandLine}
then request a backup it serves:
  curl -s -X POST ${api}/api/jobs -H "Authorization: Bearer $ALICE" -H 'content-type: application/json' -d '{"databaseId":"${externalDatabase.body.id}"}'
  curl -s ${api}/api/runners -H "Authorization: Bearer $ADMIN"`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  }
} catch (error) {
  exitCode = 1;
  const cause = error instanceof Error && error.cause ? ` (${String((error.cause as Error).message ?? error.cause)})` : '';
  console.error(`FAIL at step "${step}": ${error instanceof Error ? error.message : String(error)}${cause}`);
} finally {
  await stack.stop().catch(() => undefined);
  await source?.close().catch(() => undefined);
  await sanitized?.close().catch(() => undefined);
}
process.exit(exitCode);

/**
 * What a requester does with a download: fetch both sidecars with the link's SAS URLs, check the manifest's
 * signature against the published keys (GET /api/manifest-keys) and the file's size and SHA-256 with the runner
 * CLI's own verifier, then `sha256sum -c` on the pair. Returns one line per thing proved.
 */
async function proveDownload(stack: Awaited<ReturnType<typeof startLocalStack>>, link: Json, bytes: Buffer): Promise<string[]> {
  if (!link.sidecars) return ['no sidecars: this job was verified without a manifest (backupJob v1)'];
  const dir = mkdtempSync(join(tmpdir(), 'dbdist-sandbox-'));
  try {
    const file = join(dir, link.fileName as string);
    writeFileSync(file, bytes);
    for (const sidecar of [link.sidecars.sha256, link.sidecars.manifest] as { url: string; fileName: string }[]) {
      const response = await fetch(sidecar.url);
      if (response.status !== 200) throw new Error(`${sidecar.fileName} answered ${response.status}`);
      writeFileSync(join(dir, sidecar.fileName), Buffer.from(await response.arrayBuffer()));
    }
    const keys = await stack.api<Json>('GET', '/api/manifest-keys');
    expectStatus(keys, 200);
    const verified = await verifyDownload({ file, manifestText: readFileSync(join(dir, link.sidecars.manifest.fileName), 'utf8'), keys: keys.body.keys });
    if (!verified.proved) throw new Error(`dbdist-runner verify: ${verified.lines.join(' / ')}`);
    const sha256sum = spawnSync('sha256sum', ['-c', link.sidecars.sha256.fileName], { cwd: dir, encoding: 'utf8' });
    if (sha256sum.error) return [...verified.lines.slice(0, 3), `sha256sum not available here (${sha256sum.error.message})`];
    if (sha256sum.status !== 0) throw new Error(`sha256sum -c failed: ${sha256sum.stdout.trim()} ${sha256sum.stderr.trim()}`);
    return [...verified.lines.slice(0, 3), `sha256sum -c ${link.sidecars.sha256.fileName}: ${sha256sum.stdout.trim()}`];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
