/**
 * A runner process for the crash test: consumes jobs with an endless, slow engine until it is killed (SIGKILL),
 * like a host that loses power mid-backup. Settings come as one JSON argument.
 */
import { startTestConsumer } from './consumer-harness.js';
import { fakeEngine } from '../../dev/fake-engine.js';

const { connectionString, apiBaseUrl } = JSON.parse(process.argv[2]!) as { connectionString: string; apiBaseUrl: string };
startTestConsumer({ connectionString, apiBaseUrl, engine: fakeEngine({ endless: true, chunkDelayMs: 50, seed: 'crashed attempt' }) });
process.stdout.write('ready\n');
