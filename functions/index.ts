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
import './integrity.js';
import './timers.js';
// Orchestrator and activities register themselves with durable-functions.
import '../orchestrations/backupJob.js';
import '../orchestrations/reverifyBackup.js';
// Last: the API document describes everything registered above.
import './openapi.js';

export { registeredRoutes } from './registry.js';
