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
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
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
  return startCluster(binDir);
}

const asRoot = process.getuid?.() === 0;
/** Runs a server binary as the `postgres` OS user when we are root. */
function runServerBinary(binary: string, args: string[]) {
  return asRoot ? run('runuser', ['-u', 'postgres', '--', binary, ...args]) : run(binary, args);
}

async function startCluster(binDir: string): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), 'dbdist-pg-'));
  if (asRoot) chownSync(dir, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), -1);
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const pgCtl = join(binDir, 'pg_ctl');
  try {
    await runServerBinary(join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const serverOptions = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c fsync=off -c max_connections=50`;
    await runServerBinary(pgCtl, ['-D', dataDir, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', serverOptions, 'start']);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const shutdown = async () => {
    await runServerBinary(pgCtl, ['-D', dataDir, '-m', 'immediate', 'stop']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  return attach(`postgres://postgres@127.0.0.1:${port}/postgres`, { ownsCluster: true, shutdown });
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
