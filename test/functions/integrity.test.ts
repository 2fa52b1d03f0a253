/**
 * The integrity endpoints through the real handlers: the manifest keys (JWKS) and their rotation rule, and
 * re-verification on demand.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKeys, verifyJob } from '../../functions/integrity.js';
import { LocalManifestSigner } from '../../dev/manifest-signer.js';
import { invoke } from '../support/http.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';

let t: TestDeps;
let seeded: SeededDatabase;

beforeAll(async () => {
  t = await startTestDeps();
  seeded = await seedDatabase(t.deps.store);
});
afterAll(() => t?.close());

const kids = (body: { keys: { kid: string }[] }) => body.keys.map((key) => key.kid);

describe('GET /api/manifest-keys', () => {
  it('publishes the current key, and an older key only while a backup it signed still exists', async () => {
    const signer = t.deps.integrity.signer as LocalManifestSigner;
    const oldKid = signer.currentKeyId;
    const first = await invoke(manifestKeys, { path: 'manifest-keys' });
    expect(first.status).toBe(200);
    expect(first.json.keys).toEqual([{ kid: oldKid, kty: 'EC', crv: 'P-256', x: expect.any(String), y: expect.any(String), alg: 'ES256', use: 'sig' }]);

    // A backup signed by the old key, kept for another day; then the key rotates.
    const job = await seedJob(t.deps.store, seeded, {
      requesterOid: randomUUID(),
      status: 'Available',
      expiresAt: new Date(Date.now() + 86_400_000),
      verified: { sizeBytes: 1, sha256: 'a'.repeat(64), manifestKeyId: oldKid },
    });
    const newKid = signer.rotate();
    expect(kids((await invoke(manifestKeys, { path: 'manifest-keys' })).json)).toEqual([newKid, oldKid]);

    // Once that backup is past its expiry, the old key is retired: no longer published.
    const later = new Date(Date.now() + 2 * 86_400_000);
    const now = t.deps.now;
    t.deps.now = () => later;
    try {
      expect(kids((await invoke(manifestKeys, { path: 'manifest-keys' })).json)).toEqual([newKid]);
    } finally {
      t.deps.now = now;
    }
    // And once it is Expired (deleted), whatever the clock says.
    await t.deps.store.transitionJob(job.id, { from: ['Available'], to: 'Expired' }, { actorType: 'system', actorId: 'test', action: 'job.expired', target: `job/${job.id}` });
    expect(kids((await invoke(manifestKeys, { path: 'manifest-keys' })).json)).toEqual([newKid]);
  });
});

describe('POST /api/jobs/{id}/verify', () => {
  it('starts a re-verification for an Auditor or Admin and audits the request', async () => {
    for (const token of [t.tokens.auditor(), t.tokens.admin()]) {
      const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });
      const res = await invoke(verifyJob, { method: 'POST', path: `jobs/${job.id}/verify`, params: { id: job.id }, token });
      expect(res.status).toBe(202);
      expect(res.json).toMatchObject({ id: job.id, status: 'Available' });
      const started = t.orchestrations.reverifications.find((entry) => entry.input.jobId === job.id);
      expect(started?.instanceId).toMatch(new RegExp(`^reverify-${job.id}-\\d+$`));
      expect(started?.input.requestedBy).toMatchObject({ actorType: 'user' });
      const audit = await t.deps.store.listAudit({ jobId: job.id, action: 'integrity.verify_requested', limit: 5 });
      expect(audit.items).toHaveLength(1);
    }
  });

  it('refuses a requester (403) and a backup that is not Available (409 naming its status)', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    const before = t.orchestrations.reverifications.length;
    const requester = await invoke(verifyJob, { method: 'POST', path: `jobs/${job.id}/verify`, params: { id: job.id }, token: t.tokens.requester() });
    expect(requester.status).toBe(403);
    const running = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    const conflict = await invoke(verifyJob, { method: 'POST', path: `jobs/${running.id}/verify`, params: { id: running.id }, token: t.tokens.admin() });
    expect(conflict.status).toBe(409);
    expect(conflict.json.jobStatus).toBe('Running');
    expect(t.orchestrations.reverifications.length).toBe(before);
  });
});
