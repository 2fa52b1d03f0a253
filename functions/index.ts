/**
 * The Function App's entry point (package.json `main`): importing a file registers its functions.
 * HTTP routes go through functions/registry.ts, so an in-process host can serve the same list.
 */
import './health.js';
import './servers.js';
import './databases.js';
import './jobs.js';
import './audit.js';
import './runner.js';
import './timers.js';
// Orchestrators and activities register themselves with durable-functions: backupJob2 for new jobs, backupJob
// (and the shared activities) for the instances started before it.
import '../orchestrations/backupJob.js';
import '../orchestrations/backupJob2.js';
// Last: the API document describes everything registered above.
import './openapi.js';

export { registeredRoutes } from './registry.js';
