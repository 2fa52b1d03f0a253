import { defineConfig } from 'drizzle-kit';

// Offline generation only (`npm run db:generate`): no database connection is configured or needed.
export default defineConfig({
  dialect: 'mssql',
  schema: './shared/db/schema.mssql.ts',
  out: './shared/db/migrations/mssql',
});
