/**
 * The Function App's entry point (package.json `main`): importing a file registers its functions.
 * HTTP routes go through functions/registry.ts, so an in-process host can serve the same list.
 * It is also the composition root: it installs how the production dependencies are built (functions/production.ts,
 * imported lazily so a cold start that only serves /api/health never loads the SQL driver).
 */
import { setDepsFactory } from '../services/deps.js';

setDepsFactory(() => import('./production.js').then(({ productionDeps }) => productionDeps()));
import './health.js';
import './servers.js';
import './databases.js';
import './jobs.js';
import './recipients.js';
import './audit.js';
import './metrics.js';
import './runner.js';
import './integrity.js';
import './timers.js';
import './preflight.js';
// Orchestrators and activities register themselves with durable-functions: backupJob2 for new jobs, backupJob
// (and the shared activities) for the instances started before it.
import '../orchestrations/backupJob.js';
import '../orchestrations/backupJob2.js';
import '../orchestrations/reverifyBackup.js';
// Last: the API document describes everything registered above.
import './openapi.js';

export { registeredRoutes } from './registry.js';
