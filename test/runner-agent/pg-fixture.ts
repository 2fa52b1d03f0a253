/**
 * The PostgreSQL server for the runner's engine tests, in the shape these tests use (a URL, fresh databases by
 * name). Temporary: reads PG_URL until test/support/postgres.ts lands.
 */
import pg from 'pg';

export interface TestPostgres {
  url: string;
  /** Creates a database with exactly this name and returns the name. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const url = process.env.PG_URL;
  if (!url) throw new Error('PG_URL is not set');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const created: string[] = [];
  return {
    url,
    async createDatabase(name) {
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      created.push(name);
      return name;
    },
    async stop() {
      for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    },
  };
}
