/**
 * The sanitize and rehearsal tests' PostgreSQL: users(email, password_hash, name, phone), orders (FK to users),
 * audit_log, on a real server (PG_URL or a throwaway cluster), and a scratch driver with a prefix of its own so
 * parallel test files never drop each other's scratch databases.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { PostgresSettings } from '../../../runner-agent/config.js';
import { createPostgresScratch } from '../../../runner-agent/sanitize/postgres.js';
import type { ScratchDriver } from '../../../runner-agent/sanitize/types.js';
import { startPostgres, type PostgresServer } from '../../support/postgres.js';

export interface PgFixture {
  postgres: PostgresServer;
  settings: PostgresSettings;
  driver: ScratchDriver;
  prefix: string;
  withClient<T>(database: string, work: (client: pg.Client) => Promise<T>): Promise<T>;
  /** A fresh database with the three tables filled; returns its name. */
  seededDatabase(extra?: string): Promise<string>;
  /** Names of databases on the server starting with the driver's prefix. */
  scratchDatabases(): Promise<string[]>;
}

export const USERS = 50;
export const ORDERS = 120;
export const AUDIT_ROWS = 30;

export async function startPgFixture(): Promise<PgFixture> {
  const postgres = await startPostgres();
  const password = decodeURIComponent(new URL(postgres.url).password);
  const settings: PostgresSettings = {
    host: postgres.host,
    port: postgres.port,
    user: postgres.user,
    ...(password ? { password } : {}),
    maintenanceDatabase: 'postgres',
    ...(postgres.binDir ? { binDir: postgres.binDir } : {}),
  };
  const prefix = `dbdist_t${randomBytes(3).toString('hex')}_`;
  const driver = createPostgresScratch({ source: settings, scratch: settings, prefix });
  const withClient = async <T>(database: string, work: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ host: settings.host, port: settings.port, user: settings.user, password: settings.password, database });
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  };
  return {
    postgres,
    settings,
    driver,
    prefix,
    withClient,
    async seededDatabase(extra = '') {
      const url = await postgres.createDatabase();
      const database = decodeURIComponent(new URL(url).pathname.slice(1));
      await withClient(database, (db) =>
        db.query(`
          CREATE TABLE users (id int PRIMARY KEY, email varchar(200) NOT NULL UNIQUE, password_hash text NOT NULL,
                              name text NOT NULL, phone varchar(40));
          CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), amount numeric(10,2) NOT NULL);
          CREATE TABLE audit_log (id int PRIMARY KEY, user_id int REFERENCES users(id), action text NOT NULL);
          INSERT INTO users SELECT g, 'person' || g || '@corp.example', '$2b$12$' || md5('pw' || g), 'Person ' || g, '+41 79 ' || (1000000 + g)
            FROM generate_series(1, ${USERS}) g;
          INSERT INTO orders SELECT g, 1 + g % ${USERS}, g * 1.5 FROM generate_series(1, ${ORDERS}) g;
          INSERT INTO audit_log SELECT g, 1 + g % ${USERS}, 'login from 10.0.0.' || g FROM generate_series(1, ${AUDIT_ROWS}) g;
          ${extra}
        `),
      );
      return database;
    },
    scratchDatabases: () =>
      withClient('postgres', async (db) => {
        const { rows } = await db.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [prefix]);
        return rows.map((r) => r.datname);
      }),
  };
}
