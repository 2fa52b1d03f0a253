/**
 * A real PostgreSQL server for tests: the one `PG_URL` points at (CI starts one), or else a throwaway cluster
 * started from the Debian server binaries on a free loopback port, owned by the `postgres` OS user (PostgreSQL
 * refuses to run as root). Start it once per test file:
 *
 *   const pgTest = describe.skipIf(!postgresAvailable);   // skips only locally; CI fails without a server
 *   let postgres: PostgresServer;
 *   beforeAll(async () => { postgres = await startPostgres(); });
 *   afterAll(() => postgres?.stop());
 *   ... const url = await postgres.createDatabase();   // a fresh, empty database per test or suite
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface PostgresServer {
  /** Connection URL of the server's maintenance database (`postgres`). */
  url: string;
  host: string;
  port: number;
  user: string;
  /** Directory of the newest installed PostgreSQL binaries (pg_dump, pg_restore…), if any are installed. */
  binDir: string | undefined;
  /** Creates an empty database (a fresh random name unless given) and returns its connection URL. */
  createDatabase(name?: string): Promise<string>;
  /** Drops the databases it created; stops the cluster if it started one. */
  stop(): Promise<void>;
}

/** The newest installed server's bin directory, e.g. /usr/lib/postgresql/17/bin. */
export function findPostgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((version) => existsSync(join(root, version, 'bin', 'initdb')) && existsSync(join(root, version, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** True when tests can get a server. False only locally: in CI (`CI` set) a missing server is an error. */
export const postgresAvailable: boolean = (() => {
  const available = Boolean(process.env.PG_URL) || findPostgresBinDir() !== undefined;
  if (!available && process.env.CI) {
    throw new Error('CI must test against PostgreSQL: set PG_URL or install the postgresql server package.');
  }
  return available;
})();

export async function startPostgres(): Promise<PostgresServer> {
  if (process.env.PG_URL) return attach(process.env.PG_URL, { ownsCluster: false, shutdown: async () => {} });
  const binDir = findPostgresBinDir();
  if (!binDir) throw new Error('No PostgreSQL server binaries under /usr/lib/postgresql and no PG_URL.');
  return startThrowawayCluster({ binDir });
}

const asRoot = process.getuid?.() === 0;
/** Runs a program as the `postgres` OS user when we are root (server binaries, and tools that read its files). */
export function runAsServerUser(binary: string, args: string[]) {
  return asRoot ? run('runuser', ['-u', 'postgres', '--', binary, ...args]) : run(binary, args);
}

/** A directory the `postgres` OS user owns (mode 0700), for data directories and anything it must write. */
export async function serverUserDir(prefix: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (asRoot) chownSync(dir, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), -1);
  return dir;
}

export interface ThrowawayCluster extends PostgresServer {
  binDir: string;
  /** Its own directory (socket, log, data), owned by the `postgres` OS user. */
  dir: string;
  dataDir: string;
  /** PID of the postmaster (its first child processes are the server's). */
  postmasterPid(): number;
}

/** Server settings every throwaway cluster gets: loopback only, no fsync (tests and benchmarks, not durability). */
function serverOptions(port: number, socketDir: string, settings: Record<string, string>): string {
  const all = { listen_addresses: '127.0.0.1', port: String(port), unix_socket_directories: socketDir, fsync: 'off', max_connections: '50', ...settings };
  return Object.entries(all)
    // pg_ctl hands these to the server through /bin/sh: quote anything that is not a plain word.
    .map(([name, value]) => `-c ${name}=${/^[\w.\/-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`}`)
    .join(' ');
}

/**
 * A cluster of its own on a free loopback port: `initdb`, or an existing data directory (a restored one) when
 * `dataDir` is given, then `pg_ctl start`; `settings` are extra server settings (`archive_command`…).
 */
export async function startThrowawayCluster(options: { binDir?: string; dataDir?: string; dir?: string; settings?: Record<string, string> } = {}): Promise<ThrowawayCluster> {
  const binDir = options.binDir ?? findPostgresBinDir();
  if (!binDir) throw new Error('No PostgreSQL server binaries under /usr/lib/postgresql.');
  const dir = options.dir ?? (await serverUserDir('dbdist-pg-'));
  const dataDir = options.dataDir ?? join(dir, 'data');
  const port = await freePort();
  const pgCtl = join(binDir, 'pg_ctl');
  try {
    if (!options.dataDir) await runAsServerUser(join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const log = join(dir, `server-${port}.log`);
    // A restored data directory may replay WAL before it answers.
    const waitSeconds = options.dataDir ? '600' : '60';
    await runAsServerUser(pgCtl, ['-D', dataDir, '-l', log, '-w', '-t', waitSeconds, '-o', serverOptions(port, dir, options.settings ?? {}), 'start']);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const shutdown = async () => {
    await runAsServerUser(pgCtl, ['-D', dataDir, '-m', 'immediate', 'stop']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  const server = attach(`postgres://postgres@127.0.0.1:${port}/postgres`, { ownsCluster: true, shutdown });
  return {
    ...server,
    binDir,
    dir,
    dataDir,
    postmasterPid: () => Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]),
  };
}

function attach(url: string, cluster: { ownsCluster: boolean; shutdown: () => Promise<void> }): PostgresServer {
  const parsed = new URL(url);
  const created: string[] = [];
  const admin = () => new pg.Client({ connectionString: url });
  const urlOf = (database: string) => {
    const databaseUrl = new URL(url);
    databaseUrl.pathname = `/${database}`;
    return databaseUrl.toString();
  };
  return {
    url,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username) || 'postgres',
    binDir: findPostgresBinDir(),
    async createDatabase(name = `dbdist_test_${randomBytes(6).toString('hex')}`) {
      const client = admin();
      await client.connect();
      try {
        await client.query(`create database ${pg.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
      created.push(name);
      return urlOf(name);
    },
    async stop() {
      // A shared server (PG_URL) outlives this file: leave it as found.
      if (!cluster.ownsCluster && created.length > 0) {
        const client = admin();
        await client.connect();
        try {
          for (const name of created) await client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
        } finally {
          await client.end();
        }
      }
      await cluster.shutdown();
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
