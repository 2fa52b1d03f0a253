/** Integrity: the public keys that verify backup manifests, and re-verification on demand. */
import { z } from 'zod';
import { JobView } from '../shared/contracts/jobs.js';
import { getDeps } from '../services/deps.js';
import * as integrity from '../services/integrity.js';
import { endpoint } from './endpoint.js';
import { IdParams } from './params.js';
import { httpRoute } from './registry.js';
import { accepted } from './responses.js';

const ManifestKeySet = z
  .object({
    keys: z.array(
      z.object({ kid: z.string(), kty: z.literal('EC'), crv: z.literal('P-256'), x: z.string(), y: z.string(), alg: z.literal('ES256'), use: z.literal('sig') }),
    ),
  })
  .meta({ id: 'ManifestKeySet' });

export const manifestKeys = endpoint({
  summary: 'Public keys (JWKS) that verify backup manifests: the current key and every older one a live backup still needs',
  access: 'anonymous',
  responses: [{ status: 200, description: 'The key set', schema: ManifestKeySet }],
  async handle() {
    const keys = await integrity.publishedManifestKeys(await getDeps());
    // Public data; short caching so a rotation shows within minutes.
    return { status: 200, jsonBody: keys, headers: { 'cache-control': 'public, max-age=300' } };
  },
});

export const verifyJob = endpoint({
  summary: "Re-verify an Available backup now: the control plane re-hashes the stored bytes (Admin, Auditor)",
  access: { anyOf: ['Admin', 'Auditor'] },
  params: IdParams,
  responses: [{ status: 202, description: 'Re-verification started; the job as it was. The outcome is audited (integrity.verified / integrity.failed)', schema: JobView }],
  async handle({ scope, params }) {
    return accepted(await integrity.requestVerification(scope, params.id), `jobs/${params.id}`);
  },
});

httpRoute({ name: 'manifest-keys', route: 'manifest-keys', methods: ['GET'], handler: manifestKeys });
httpRoute({ name: 'jobs-verify', route: 'jobs/{id}/verify', methods: ['POST'], handler: verifyJob, durableClient: true });
