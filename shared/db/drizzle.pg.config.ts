import { defineConfig } from 'drizzle-kit';

// Offline generation only (`npm run db:generate`): no database connection is configured or needed.
export default defineConfig({
  dialect: 'postgresql',
  schema: './shared/db/schema.pg.ts',
  out: './shared/db/migrations/pg',
});
