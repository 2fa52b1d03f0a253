/**
 * dbdist beside pgBackRest, what a PostgreSQL user would pick instead, on the same generated database in one run
 * (`npm run bench -- pgbackrest`, `--pg-size-mib N`, default 128; the ~1 GiB figure: `--pg-size-mib 1024`).
 *
 *   pgBackRest  `backup --type=full` (physical: the cluster's files + the WAL that makes them consistent) into the
 *               stack's Azurite (repository type azure, path-style URIs, shared key, the loopback CA), zstd,
 *               process-max=2, start-fast; WAL archived by `archive-push` from the server's archive_command.
 *   dbdist      a job requested through the API of the local stack (dev/stack.ts: real handlers, backupJob2,
 *               the AMQP broker, Azurite) and run by the real runner CLI as its own OS process
 *               (`dbdist-runner start`, built to JavaScript as in production): pg_dump (logical) → [gzip|zstd] →
 *               [age] → SHA-256 → Blob; then the control plane re-hashes the blob and marks it Available.
 *
 * For each: wall time from start to a restorable copy in Blob, client CPU (the whole process tree: pgBackRest
 * and its workers; the runner with pg_dump and zstd), the database server's CPU meanwhile, stored size, and the
 * time to restore each copy into a fresh cluster / database and see the rows. One runner process per option,
 * so its peak RSS (VmHWM) is that option's: every compression × encryption option is checked against 256 MiB.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Compression } from '../shared/contracts/common.js';
import { ensureLoopbackCert } from '../dev/tls.js';
import { startLocalStack, type LocalStack } from '../dev/stack.js';
import { prepareRunnerProcess, spawnRunner, type RunnerProcessSetup } from '../dev/runner-process.js';
import { findPostgresBinDir, runAsServerUser, serverUserDir, startThrowawayCluster, type ThrowawayCluster } from '../test/support/postgres.js';
import { bundled } from './lib/child.js';
import { childCpuSeconds, endedChildrenCpuSeconds, peakRssMiB, processTreeCpuSeconds } from './lib/proc.js';
import { fixed, metOrNot, MiB, printTable, ratio } from './lib/report.js';
import { generate } from './pg.js';

const run = promisify(execFile);
const pgbackrestBinary = '/usr/bin/pgbackrest';
const stanza = 'bench';
/** Azurite's well-known development account key (public; Azurite accepts it beside OAuth). */
const azuriteAccountKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
/** The production default of REHASH_BUDGET_MIB: one re-hash activity per 4 GiB. */
const rehashBudgetBytes = 4096 * MiB;
const rssLimitMiB = 256;
const jobTimeoutMs = 30 * 60_000;

export interface PgBackRestBenchOptions {
  sizeMiB: number;
}

type Json = Record<string, any>;

interface DbdistOption {
  compression: Compression;
  encrypted: boolean;
}

interface DbdistRun extends DbdistOption {
  jobId: string;
  /** Request → Verifying (the runner committed the blob and reported it) and → Available (re-hashed, signed). */
  committedSeconds: number;
  availableSeconds: number;
  clientCpuSeconds: number;
  serverCpuSeconds: number;
  /** Azurite's CPU meanwhile: the emulator's share, on the same cores (Azure's is not on the client's machine). */
  azuriteCpuSeconds: number | undefined;
  storedBytes: number;
  peakRssMiB: number | undefined;
  /** The runner process before its first job (Node, the modules, MSAL, the Service Bus client). */
  idleRssMiB: number | undefined;
  load: number;
}

interface Restore {
  seconds: number;
  rows: number;
}

export async function runPgBackRestBench(options: PgBackRestBenchOptions): Promise<void> {
  const binDir = findPostgresBinDir();
  const missing = [
    ...(binDir ? [] : ['PostgreSQL server binaries (/usr/lib/postgresql/*/bin)']),
    ...(existsSync(pgbackrestBinary) ? [] : [`pgBackRest (${pgbackrestBinary}, Debian package pgbackrest)`]),
    ...['zstd', 'age', 'age-keygen', 'pg_restore'].filter((tool) => !onPath(tool)),
  ];
  if (missing.length > 0) {
    console.log(`Skipped: missing ${missing.join(', ')}.`);
    return;
  }
  // Everything pgBackRest and the server read or write lives in directories the postgres OS user owns.
  const brDir = await serverUserDir('dbdist-pgbr-');
  const clusterDir = await serverUserDir('dbdist-pgbr-cluster-');
  const config = join(brDir, 'pgbackrest.conf');
  const caFile = join(brDir, 'ca.pem');
  copyFileSync(ensureLoopbackCert().certPath, caFile); // .tmp/tls is private to this user
  const keyDir = mkdtempSync(join(tmpdir(), 'dbdist-pgbr-keys-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    console.log('Starting the local stack and a throwaway cluster with WAL archiving …');
    const [stack, cluster] = await Promise.all([
      startLocalStack({ rehashBudgetBytes }),
      startThrowawayCluster({ binDir, dir: clusterDir, settings: { wal_level: 'replica', archive_mode: 'on', max_wal_size: '4GB' } }),
    ]);
    cleanups.push(() => cluster.stop(), () => stack.stop());
    // archive_command points at pgBackRest only after the data is loaded: the load's WAL is not the backup's.
    // (ALTER SYSTEM, not a command-line setting, which would override it.)
    await setArchiveCommand(cluster, '/bin/true');
    const url = await cluster.createDatabase('bench');
    const generated = await generate(url, options.sizeMiB);
    const databaseGiB = generated.bytes / (1024 * MiB);
    console.log(`Generated ${generated.rows} rows: ${fixed(generated.bytes / MiB)} MiB on disk in ${fixed(generated.seconds, 1)} s`);

    await configurePgBackRest({ stack, cluster, config, caFile, brDir });

    console.log('Building the runner CLI (esbuild, as `npm run build` would) …');
    const script = await bundled(new URL('../runner-agent/cli.ts', import.meta.url), 'runner/cli.js');
    const dbdist = await registerDatabase(stack, cluster, keyDir);

    // pgBackRest before and after dbdist's two comparable options (a change of load between them shows as two
    // different pgBackRest times), then the other options (every option for the RSS target).
    const backrestRuns: Array<Awaited<ReturnType<typeof pgbackrestBackup>>> = [];
    const backrestOnce = async () => {
      process.stdout.write('  pgBackRest backup --type=full           … ');
      const measured = await pgbackrestBackup(stack, cluster, config);
      console.log(`${fixed(measured.seconds, 1)} s`);
      backrestRuns.push(measured);
    };
    await backrestOnce();
    const dumpFloor = await pgDumpAlone(cluster, 'bench');
    const chosen: Array<DbdistOption | 'pgbackrest'> = [
      { compression: 'zstd', encrypted: false },
      { compression: 'none', encrypted: false },
      'pgbackrest',
      { compression: 'gzip', encrypted: false },
      { compression: 'zstd', encrypted: true },
      { compression: 'none', encrypted: true },
      { compression: 'gzip', encrypted: true },
    ];
    const runs: DbdistRun[] = [];
    for (const option of chosen) {
      if (option === 'pgbackrest') {
        await backrestOnce();
        continue;
      }
      process.stdout.write(`  dbdist ${optionLabel(option).padEnd(32)} … `);
      const measured = await dbdistBackup(stack, cluster, dbdist, script, option);
      console.log(`${fixed(measured.availableSeconds, 1)} s to Available, peak RSS ${fixed(measured.peakRssMiB)} MiB`);
      runs.push(measured);
      // Copies nobody restores here go at once: Azurite keeps every blob in this machine's memory.
      if (!restored(option)) await deleteCopy(stack, measured.jobId);
    }
    // The yardstick: pgBackRest's mean over its two runs.
    const backrestSeconds = backrestRuns.reduce((sum, r) => sum + r.seconds, 0) / backrestRuns.length;

    console.log('Restoring each comparable copy …');
    process.stdout.write('  pgBackRest restore + start + recovery   … ');
    const backrestRestore = await pgbackrestRestore(cluster, config, binDir!);
    console.log(`${fixed(backrestRestore.seconds, 1)} s, ${backrestRestore.rows} rows`);
    const restores = new Map<DbdistRun, Restore>();
    for (const measured of runs.filter(restored)) {
      process.stdout.write(`  dbdist ${optionLabel(measured).padEnd(32)} … `);
      const restore = await dbdistRestore(stack, cluster, measured, keyDir);
      console.log(`${fixed(restore.seconds, 1)} s, ${restore.rows} rows`);
      restores.set(measured, restore);
    }
    for (const [label, restore] of [['pgBackRest', backrestRestore], ...[...restores].map(([r, x]) => [`dbdist ${optionLabel(r)}`, x] as const)] as const) {
      if (restore.rows !== generated.rows) throw new Error(`${label}: the restored copy has ${restore.rows} rows, the database ${generated.rows}`);
    }

    printTable(
      `A restorable copy of a ${fixed(generated.bytes / MiB, 0)} MiB database in Blob (Azurite), side by side (ratios from this run)`,
      ['copy', 'kind', 'to committed blob s', 'to restorable copy s', 'vs pgBackRest (mean)', 'client CPU s', 'client CPU s/GiB', 'server CPU s', 'Azurite CPU s', 'stored MiB', 'restore s', 'load'],
      [
        ...backrestRuns.map((backrest, index) => [
          `pgBackRest full, zst, 2 processes (${index === 0 ? 'first' : 'again'})`,
          'physical',
          fixed(backrest.seconds, 1),
          fixed(backrest.seconds, 1),
          ratio(backrest.seconds, backrestSeconds),
          fixed(backrest.clientCpuSeconds, 2),
          fixed(backrest.clientCpuSeconds / databaseGiB, 2),
          fixed(backrest.serverCpuSeconds, 2),
          fixed(backrest.azuriteCpuSeconds, 2),
          `${fixed(backrest.storedBytes / MiB)} (WAL ${fixed(backrest.archiveBytes / MiB, 2)})`,
          index === backrestRuns.length - 1 ? fixed(backrestRestore.seconds, 1) : '-',
          fixed(backrest.load),
        ]),
        ...runs.map((r) => [
          `dbdist ${optionLabel(r)}`,
          'logical',
          fixed(r.committedSeconds, 1),
          fixed(r.availableSeconds, 1),
          ratio(r.availableSeconds, backrestSeconds),
          fixed(r.clientCpuSeconds, 2),
          fixed(r.clientCpuSeconds / databaseGiB, 2),
          fixed(r.serverCpuSeconds, 2),
          fixed(r.azuriteCpuSeconds, 2),
          fixed(r.storedBytes / MiB),
          fixed(restores.get(r)?.seconds, 1),
          fixed(r.load),
        ]),
      ],
    );
    console.log(
      `pg_dump alone (${dumpFloor.args.join(' ')} > /dev/null, one process, what no logical copy can beat): ${fixed(dumpFloor.seconds, 1)} s ` +
        `(${ratio(dumpFloor.seconds, backrestSeconds)} pgBackRest's mean time)`,
    );
    for (const r of runs.filter((x) => !x.encrypted && x.compression !== 'gzip')) {
      console.log(
        `dbdist ${optionLabel(r)}: ${fixed(r.availableSeconds - r.committedSeconds, 1)} s of its ${fixed(r.availableSeconds, 1)} s are the control plane's ` +
          `verification after the commit (re-hash of the ${fixed(r.storedBytes / MiB, 0)} MiB blob, manifest, Available)`,
      );
    }
    console.log(
      'to committed blob: pgBackRest\'s command end (its backup and the WAL it needs are in Blob); dbdist: request → Verifying ' +
        '(the runner committed the blob and reported it). to restorable copy: dbdist request → Available (re-hashed by the ' +
        'control plane, manifest signed: a link can be minted). restore: pgBackRest restore + start + recovery until ' +
        'pg_is_in_recovery() is false; dbdist link → download → decompress → pg_restore -j 2 into a new database. Both count the rows.',
    );

    printTable(
      `The runner CLI's own process (dbdist-runner start, built JavaScript), one process per option, ${fixed(generated.bytes / MiB, 0)} MiB database`,
      ['option', 'peak RSS MiB (VmHWM)', 'idle before the job MiB', `< ${rssLimitMiB} MiB`],
      runs.map((r) => [optionLabel(r), fixed(r.peakRssMiB), fixed(r.idleRssMiB), metOrNot(r.peakRssMiB === undefined ? undefined : r.peakRssMiB < rssLimitMiB)]),
    );

    console.log('Targets:');
    const zstd = runs.find((r) => r.compression === 'zstd' && !r.encrypted);
    console.log(
      `  dbdist (zstd, the issue's comparison) time to a restorable copy <= 1.5 x pgBackRest's (mean of its two runs): ` +
        `${ratio(zstd?.availableSeconds, backrestSeconds)} to Available, ${ratio(zstd?.committedSeconds, backrestSeconds)} to the committed blob -> ` +
        `${metOrNot(zstd ? zstd.availableSeconds / backrestSeconds <= 1.5 : undefined)}`,
    );
    const worst = Math.max(...runs.map((r) => r.peakRssMiB ?? Number.POSITIVE_INFINITY));
    console.log(
      `  runner CLI peak RSS < ${rssLimitMiB} MiB on every compression and encryption option: ` +
        `worst ${fixed(worst)} MiB -> ${metOrNot(Number.isFinite(worst) ? worst < rssLimitMiB : undefined)}`,
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    rmSync(brDir, { recursive: true, force: true });
    rmSync(keyDir, { recursive: true, force: true });
  }
}

/** The copies restored at the end: the two comparable to pgBackRest's. */
function restored(option: DbdistOption): boolean {
  return !option.encrypted && option.compression !== 'gzip';
}

async function deleteCopy(stack: LocalStack, jobId: string): Promise<void> {
  const job = await stack.store.getJob(jobId);
  if (job?.blobPath) await stack.azurite.serviceClient.getContainerClient(stack.container).deleteBlob(job.blobPath, { deleteSnapshots: 'include' });
}

function difference(after: number | undefined, before: number | undefined): number | undefined {
  return after === undefined || before === undefined ? undefined : after - before;
}

function optionLabel(option: DbdistOption): string {
  return `${option.compression}${option.encrypted ? ' + age' : ''}`;
}

function onPath(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function pgbackrest(config: string, ...args: string[]) {
  return runAsServerUser(pgbackrestBinary, [`--config=${config}`, `--stanza=${stanza}`, ...args]);
}

/**
 * The repository in the stack's Azurite (container `pgbackrest`, shared key), pgBackRest's options as a user would
 * set them for Azure, the server's archive_command switched to archive-push, then stanza-create (one-time setup,
 * not timed). pgBackRest checks the host name against the certificate's DNS names only: `localhost`, not the IP.
 */
async function configurePgBackRest(context: { stack: LocalStack; cluster: ThrowawayCluster; config: string; caFile: string; brDir: string }): Promise<void> {
  const { stack, cluster, config, caFile, brDir } = context;
  await stack.azurite.createContainer('pgbackrest');
  const port = new URL(stack.azurite.blobEndpoint).port;
  const settings = [
    '[global]',
    'repo1-type=azure',
    'repo1-path=/repo',
    'repo1-azure-account=devstoreaccount1',
    `repo1-azure-key=${azuriteAccountKey}`,
    'repo1-azure-key-type=shared',
    'repo1-azure-container=pgbackrest',
    'repo1-azure-host=localhost',
    `repo1-azure-port=${port}`,
    'repo1-azure-uri-style=path',
    `repo1-azure-ca-file=${caFile}`,
    // Both timed backups stay: expiring the first would put deletions on the second one's clock.
    'repo1-retention-full=2',
    'compress-type=zst',
    'process-max=2',
    'start-fast=y',
    `lock-path=${join(brDir, 'lock')}`,
    `log-path=${join(brDir, 'log')}`,
    'log-level-file=off',
    'log-level-console=warn',
    '',
    `[${stanza}]`,
    `pg1-path=${cluster.dataDir}`,
    `pg1-port=${cluster.port}`,
    `pg1-socket-path=${cluster.dir}`,
    '',
  ];
  writeFileSync(config, settings.join('\n'), { mode: 0o644 });
  await setArchiveCommand(cluster, `${pgbackrestBinary} --config=${config} --stanza=${stanza} archive-push %p`);
  await pgbackrest(config, 'stanza-create');
}

async function setArchiveCommand(cluster: ThrowawayCluster, command: string): Promise<void> {
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  try {
    await admin.query('checkpoint');
    await admin.query(`alter system set archive_command = ${pg.escapeLiteral(command)}`);
    await admin.query('select pg_reload_conf()');
  } finally {
    await admin.end();
  }
}

async function pgbackrestBackup(stack: LocalStack, cluster: ThrowawayCluster, config: string) {
  const server = cluster.postmasterPid();
  const cpuBefore = endedChildrenCpuSeconds();
  const serverBefore = processTreeCpuSeconds(server);
  const azuriteBefore = childCpuSeconds('azurite');
  const started = process.hrtime.bigint();
  await pgbackrest(config, '--type=full', 'backup');
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const clientCpuSeconds = endedChildrenCpuSeconds() - cpuBefore;
  const serverCpuSeconds = processTreeCpuSeconds(server) - serverBefore;
  const azuriteCpuSeconds = difference(childCpuSeconds('azurite'), azuriteBefore);
  const load = loadavg()[0]!;
  return { seconds, clientCpuSeconds, serverCpuSeconds, azuriteCpuSeconds, load, ...(await newestBackupBytes(stack, config)) };
}

/**
 * What a restore of the newest backup needs from the repository: its backup set and the WAL segments from its
 * start to its stop (pgBackRest's own `info` names them), summed over the blobs as stored.
 */
async function newestBackupBytes(stack: LocalStack, config: string): Promise<{ storedBytes: number; archiveBytes: number }> {
  const { stdout } = await pgbackrest(config, '--output=json', 'info');
  const [info] = JSON.parse(stdout) as Array<{ backup: Array<{ label: string; archive: { start: string; stop: string } }> }>;
  const newest = info!.backup.at(-1)!;
  let setBytes = 0;
  let archiveBytes = 0;
  for await (const blob of stack.azurite.serviceClient.getContainerClient('pgbackrest').listBlobsFlat({ prefix: 'repo/' })) {
    const size = blob.properties.contentLength ?? 0;
    if (blob.name.startsWith(`repo/backup/${stanza}/${newest.label}/`)) setBytes += size;
    const segment = /^repo\/archive\/[^/]+\/[^/]+\/[0-9A-F]{16}\/([0-9A-F]{24})-/.exec(blob.name)?.[1];
    if (segment && segment >= newest.archive.start && segment <= newest.archive.stop) archiveBytes += size;
  }
  return { storedBytes: setBytes + archiveBytes, archiveBytes };
}

/** pg_dump of the same database to /dev/null, as the runner's zstd path runs it: the floor of a logical copy. */
async function pgDumpAlone(cluster: ThrowawayCluster, database: string) {
  const args = ['--format=custom', '--compress=0'];
  const started = process.hrtime.bigint();
  const child = spawn(join(cluster.binDir, 'pg_dump'), [...args, `--host=${cluster.host}`, `--port=${cluster.port}`, `--username=${cluster.user}`, database], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`pg_dump exited with ${code}`);
  return { args: ['pg_dump', ...args], seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

interface RegisteredDatabase {
  databaseId: string;
  setup: RunnerProcessSetup;
  aliceKeyFile: string;
}

/** The bench database registered as an Admin would, alice's age key registered, one runner setup for its server. */
async function registerDatabase(stack: LocalStack, cluster: ThrowawayCluster, keyDir: string): Promise<RegisteredDatabase> {
  const server = await expectOk(
    stack.api<Json>('POST', '/api/servers', { token: stack.tokens.admin, body: { name: 'bench-pg', host: `${cluster.host}:${cluster.port}`, engine: 'postgres' } }),
  );
  const database = await expectOk(
    stack.api<Json>('POST', `/api/servers/${server.id}/databases`, { token: stack.tokens.admin, body: { name: 'bench', requesterGroupIds: [stack.requesterGroupId] } }),
  );
  const aliceKeyFile = join(keyDir, 'alice.txt');
  execFileSync('age-keygen', ['-o', aliceKeyFile], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', aliceKeyFile]).toString().trim();
  await expectOk(stack.api<Json>('PUT', '/api/me/recipients', { token: stack.tokens.alice, body: { recipients: [recipient] } }));
  const setup = await prepareRunnerProcess(stack, {
    serverId: server.id,
    dir: join(keyDir, 'runner'),
    postgres: { host: cluster.host, port: cluster.port, user: cluster.user },
    settings: { logLevel: 'info' },
  });
  return { databaseId: database.id, setup, aliceKeyFile };
}

async function expectOk(response: Promise<{ status: number; body: Json; text: string }>): Promise<Json> {
  const answer = await response;
  if (answer.status >= 300) throw new Error(`HTTP ${answer.status}: ${answer.text.slice(0, 300)}`);
  return answer.body;
}

/** One job through the whole product, served by a fresh runner process (so its peak RSS is this option's). */
async function dbdistBackup(stack: LocalStack, cluster: ThrowawayCluster, registered: RegisteredDatabase, script: string, option: DbdistOption): Promise<DbdistRun> {
  const runner = spawnRunner(registered.setup, { script });
  try {
    await runner.waitForLog((line) => line.msg === 'listening for backup jobs', 120_000);
    const pid = runner.child.pid!;
    const idleRssMiB = peakRssMiB(pid);
    const server = cluster.postmasterPid();
    const cpuBefore = processTreeCpuSeconds(pid);
    const serverBefore = processTreeCpuSeconds(server);
    const azuriteBefore = childCpuSeconds('azurite');
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    const created = await expectOk(
      stack.api<Json>('POST', '/api/jobs', {
        token: stack.tokens.alice,
        body: { databaseId: registered.databaseId, options: { compression: option.compression, encryption: option.encrypted ? 'age' : 'none' } },
      }),
    );
    const jobId = created.id as string;
    let committedSeconds: number | undefined;
    for (;;) {
      const job = await stack.store.getJob(jobId);
      if (job?.status === 'Verifying' || job?.status === 'Available') committedSeconds ??= seconds();
      if (job?.status === 'Available') {
        const availableSeconds = seconds();
        return {
          ...option,
          jobId,
          committedSeconds: committedSeconds!,
          availableSeconds,
          clientCpuSeconds: processTreeCpuSeconds(pid) - cpuBefore,
          serverCpuSeconds: processTreeCpuSeconds(server) - serverBefore,
          azuriteCpuSeconds: difference(childCpuSeconds('azurite'), azuriteBefore),
          storedBytes: job.sizeBytes ?? Number.NaN,
          peakRssMiB: peakRssMiB(pid),
          idleRssMiB,
          load: loadavg()[0]!,
        };
      }
      if (job && ['Failed', 'Cancelled', 'Expired'].includes(job.status)) throw new Error(`job ${jobId} ended ${job.status}: ${job.errorCode} ${job.errorMessage}`);
      if (seconds() * 1000 > jobTimeoutMs) throw new Error(`job ${jobId} still ${job?.status}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await runner.stop('SIGTERM');
  }
}

/** Restore into a new data directory, start it on a free port, wait for the end of recovery, count the rows. */
async function pgbackrestRestore(cluster: ThrowawayCluster, config: string, binDir: string): Promise<Restore> {
  const dir = await serverUserDir('dbdist-pgbr-restore-');
  const dataDir = join(dir, 'data');
  await runAsServerUser('mkdir', ['-m', '700', dataDir]);
  const started = process.hrtime.bigint();
  let restored: ThrowawayCluster | undefined;
  try {
    await pgbackrest(config, `--pg1-path=${dataDir}`, 'restore');
    // The restored cluster must not archive into the repository it came from.
    restored = await startThrowawayCluster({ binDir, dataDir, dir, settings: { archive_mode: 'off' } });
    const url = new URL(restored.url);
    url.pathname = '/bench';
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      while ((await client.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]!.r) await new Promise((resolve) => setTimeout(resolve, 50));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const { rows } = await client.query<{ n: string }>('select count(*) as n from orders');
      return { seconds, rows: Number(rows[0]!.n) };
    } finally {
      await client.end();
    }
  } finally {
    if (restored) await restored.stop();
    else rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What a developer does with the copy: mint a link, download it, decompress it, pg_restore -j 2 into a new
 * database of the cluster (a custom-format file restores in parallel; a pipe could not), count the rows.
 */
async function dbdistRestore(stack: LocalStack, cluster: ThrowawayCluster, measured: DbdistRun, keyDir: string): Promise<Restore> {
  const dir = mkdtempSync(join(keyDir, 'restore-'));
  const target = `restored_${measured.compression}`;
  const started = process.hrtime.bigint();
  try {
    const link = await expectOk(stack.api<Json>('POST', `/api/jobs/${measured.jobId}/download-link`, { token: stack.tokens.alice, body: { ttlMinutes: 15 } }));
    const downloaded = join(dir, link.fileName as string);
    const response = await fetch(link.url as string);
    if (response.status !== 200 || !response.body) throw new Error(`download answered ${response.status}`);
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), createWriteStream(downloaded));
    let dump = downloaded;
    if (measured.compression !== 'none') {
      dump = join(dir, 'backup.dump');
      await run(measured.compression === 'zstd' ? 'zstd' : 'sh', measured.compression === 'zstd' ? ['-d', '-q', downloaded, '-o', dump] : ['-c', `gzip -dc '${downloaded}' > '${dump}'`]);
    }
    await cluster.createDatabase(target);
    await run(join(cluster.binDir, 'pg_restore'), ['--jobs=2', '--no-owner', `--host=${cluster.host}`, `--port=${cluster.port}`, `--username=${cluster.user}`, `--dbname=${target}`, dump]);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const url = new URL(cluster.url);
    url.pathname = `/${target}`;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: string }>('select count(*) as n from orders');
      return { seconds, rows: Number(rows[0]!.n) };
    } finally {
      await client.end();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

