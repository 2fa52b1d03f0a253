import { defineConfig } from 'vitest/config';
import { trustLoopbackCertInChildProcesses } from './dev/tls.js';

// Loopback HTTPS stand-ins (Azurite with OAuth, the OIDC issuer) use a self-signed certificate. Node reads
// NODE_EXTRA_CA_CERTS only at process start, so it is set here, before vitest forks its workers.
trustLoopbackCertInChildProcesses();

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration fixtures (Azurite, PostgreSQL, the AMQP broker) start once per worker; two cores here.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
