/**
 * `npm run db:migrate`: applies the committed T-SQL migrations (shared/db/migrations/mssql) to Azure SQL, signed
 * in as whoever runs it (DefaultAzureCredential: `az login`, azd's login, a managed identity). Idempotent: Drizzle
 * records applied migrations in the database. Reads SQL_SERVER and SQL_DATABASE, which `azd env get-values`
 * provides after `azd provision`; run it as the server's Entra admin (or a user with db_ddladmin).
 *
 * `--from-azd-hook` (azure.yaml postprovision): when this machine cannot reach the database (firewall, private
 * endpoint, blocked port) it prints what to do and exits 0, so `azd up` finishes; any other failure still fails.
 */
import { DefaultAzureCredential } from '@azure/identity';
import { z } from 'zod';
import { parseSettings } from '../config.js';
import { errorMessage } from '../errors.js';
import { unreachableAdvice } from './migrate-access.js';
import { createMssqlStore } from './mssql.js';

const settings = z.object({
  SQL_SERVER: z.string().min(1),
  SQL_DATABASE: z.string().min(1),
  SQL_TOKEN_SCOPE: z.string().min(1).optional(),
  SQL_CONNECTIVITY: z.string().optional(),
});
const fromAzdHook = process.argv.includes('--from-azd-hook');
const skipped = (why: string) => {
  console.warn(`WARNING: schema NOT applied. ${why}\nUntil it has run, every API call that touches the database fails.`);
  process.exit(0);
};

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(`Usage: SQL_SERVER=<server>.database.windows.net SQL_DATABASE=<db> npm run db:migrate

Applies shared/db/migrations/mssql to the database as the signed-in Entra identity (az login / azd auth login).
With azd: set -a; eval "$(azd env get-values)"; set +a; npm run db:migrate`);
  process.exit(0);
}

try {
  const { SQL_SERVER, SQL_DATABASE, SQL_TOKEN_SCOPE, SQL_CONNECTIVITY } = parseSettings(settings, process.env, 'migration settings');
  if (fromAzdHook && SQL_CONNECTIVITY === 'PrivateEndpoint') {
    skipped('The server accepts private-endpoint connections only: run npm run db:migrate from a machine in the virtual network.');
  }
  console.log(`Applying migrations to ${SQL_DATABASE} on ${SQL_SERVER} …`);
  const store = await createMssqlStore(
    { server: SQL_SERVER, database: SQL_DATABASE, credential: new DefaultAzureCredential(), ...(SQL_TOKEN_SCOPE ? { scope: SQL_TOKEN_SCOPE } : {}) },
    { migrate: true },
  );
  await store.ping();
  await store.close();
  console.log('Schema is up to date.');
} catch (error) {
  const advice = unreachableAdvice(error);
  if (fromAzdHook && advice) skipped(advice);
  console.error(`Migration failed: ${errorMessage(error)}${advice ? `\n${advice}` : ''}`);
  process.exit(1);
}
