import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createJob } from '../../functions/jobs.js';
import { getMyRecipients, listRetiredRecipientCopies, putMyRecipients } from '../../functions/recipients.js';
import { prepareJob } from '../../orchestrations/backupJob.activities.js';
import { generateAgeIdentity } from '../../runner-agent/pipeline/age.js';
import { recipientFingerprint } from '../../services/encryption.js';
import { JobView } from '../../shared/contracts/jobs.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
let seeded: SeededDatabase;
const [mine, recovery, team, newRecovery] = [generateAgeIdentity(), generateAgeIdentity(), generateAgeIdentity(), generateAgeIdentity()];

beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(() => t?.close());
beforeEach(async () => {
  seeded = await seedDatabase(t.deps.store, { policy: { encryptionRecipients: [team.recipient] } });
  t.deps.recoveryRecipients = [recovery.recipient];
});

const requester = (oid: string) => t.tokens.requester({ oid, extraGroups: [seeded.requesterGroupId] });
const putKeys = (oid: string, recipients: unknown) =>
  invoke(putMyRecipients, { method: 'PUT', path: 'me/recipients', token: requester(oid), body: { recipients } });
const requestCopy = (oid: string, options: Record<string, unknown>, databaseId = seeded.database.id) =>
  invoke(createJob, { method: 'POST', path: 'jobs', token: requester(oid), body: { databaseId, options } });

describe('PUT /api/me/recipients', () => {
  it('registers the caller\'s public keys, audited by fingerprint, and GET reads them back', async () => {
    const oid = randomUUID();
    const res = await putKeys(oid, [mine.recipient]);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ recipients: [{ recipient: mine.recipient, fingerprint: recipientFingerprint(mine.recipient) }] });
    const read = await invoke(getMyRecipients, { method: 'GET', path: 'me/recipients', token: requester(oid) });
    expect(read.json).toEqual(res.json);
    const audit = (await t.deps.store.listAudit({ actor: oid, action: 'recipients.updated', limit: 5 })).items;
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ target: `user/${oid}`, detail: { before: [], after: [recipientFingerprint(mine.recipient)] } });
  });

  it('refuses what is not an age public key with 400 naming the entry, and stores nothing', async () => {
    const oid = randomUUID();
    for (const bad of [mine.identity, 'age1notakey', 'ssh-ed25519 AAAAC3Nz']) {
      const res = await putKeys(oid, [bad]);
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ errors: [{ field: 'body.recipients.0' }] });
    }
    expect((await putKeys(oid, [mine.recipient, mine.recipient])).status).toBe(400);
    expect(await t.deps.store.listRequesterRecipients(oid)).toEqual([]);
    // The private key never reaches a log line or an audit row.
    expect(JSON.stringify((await t.deps.store.listAudit({ actor: oid, limit: 10 })).items)).not.toContain('AGE-SECRET-KEY');
  });
});

describe('POST /api/jobs with encryption "age"', () => {
  it('without a registered key: 400 saying how to add one; no job, nothing started or queued', async () => {
    const before = t.orchestrations.snapshot();
    const queued = t.queue.enqueued.length;
    const res = await requestCopy(randomUUID(), { encryption: 'age' });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ errors: [{ field: 'body.options.encryption' }] });
    expect((res.json as { detail: string }).detail).toMatch(/no age public key registered.*age-keygen.*PUT \/api\/me\/recipients/);
    expect((await t.deps.store.listJobs({ limit: 50 })).items.filter((j) => j.databaseId === seeded.database.id)).toEqual([]);
    expect(t.orchestrations.snapshot()).toEqual(before);
    expect(t.queue.enqueued.length).toBe(queued);
  });

  it('encrypts to the requester, the recovery and the policy keys; the job lists fingerprints, the message public keys', async () => {
    const oid = randomUUID();
    await putKeys(oid, [mine.recipient]);
    const res = await requestCopy(oid, { encryption: 'age', compression: 'zstd' });
    expect(res.status).toBe(202);
    const job = JobView.parse(res.json);
    expect(job.recipients).toEqual([
      { fingerprint: recipientFingerprint(mine.recipient), role: 'requester' },
      { fingerprint: recipientFingerprint(recovery.recipient), role: 'recovery' },
      { fingerprint: recipientFingerprint(team.recipient), role: 'policy' },
    ]);
    expect((await t.deps.store.getJob(job.id))?.blobPath).toMatch(/\.bak\.zst\.age$/);
    const prepared = await prepareJob({ jobId: job.id, at: new Date().toISOString() });
    expect(prepared.ok && prepared.message.ageRecipients).toEqual([mine.recipient, recovery.recipient, team.recipient]);
    expect(JSON.stringify(prepared)).not.toContain('AGE-SECRET-KEY');
  });

  it('follows the database policy: required refuses an unencrypted copy, none refuses an encrypted one', async () => {
    const oid = randomUUID();
    await putKeys(oid, [mine.recipient]);
    const required = await seedDatabase(t.deps.store, { policy: { encryption: 'required' } });
    const none = await seedDatabase(t.deps.store, { policy: { encryption: 'none' } });
    const ask = (db: SeededDatabase, options: Record<string, unknown>) =>
      invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.requester({ oid, extraGroups: [db.requesterGroupId] }), body: { databaseId: db.database.id, options } });
    expect((await ask(required, {})).status).toBe(400);
    expect((await ask(required, { encryption: 'age' })).status).toBe(202);
    expect((await ask(none, { encryption: 'age' })).status).toBe(400);
    expect((await ask(none, {})).status).toBe(202);
  });

  it("refuses the retired format by name", async () => {
    expect((await requestCopy(randomUUID(), { encryption: 'dbde' })).status).toBe(400);
  });
});

describe('GET /api/recipients/retired-copies (rotation)', () => {
  it('lists Available copies whose recovery keys were all rotated out, and only those', async () => {
    const role = (recipient: string, r: 'requester' | 'recovery') => ({ recipient, fingerprint: recipientFingerprint(recipient), role: r });
    const oid = randomUUID();
    const onOldKey = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Available', encryptionRecipients: [role(mine.recipient, 'requester'), role(recovery.recipient, 'recovery')] });
    const onBoth = await seedJob(t.deps.store, seeded, {
      requesterOid: oid,
      status: 'Available',
      encryptionRecipients: [role(recovery.recipient, 'recovery'), role(newRecovery.recipient, 'recovery')],
    });
    const expired = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Expired', encryptionRecipients: [role(recovery.recipient, 'recovery')] });

    const list = async () => {
      const res = await invoke(listRetiredRecipientCopies, { method: 'GET', path: 'recipients/retired-copies', token: t.tokens.admin() });
      expect(res.status).toBe(200);
      return (res.json as { items: { jobId: string; retiredFingerprints: string[] }[] }).items;
    };
    expect((await list()).map((i) => i.jobId)).not.toContain(onOldKey.id);

    t.deps.recoveryRecipients = [newRecovery.recipient]; // the rotation: the new key in, the old one out
    const items = await list();
    expect(items.find((i) => i.jobId === onOldKey.id)?.retiredFingerprints).toEqual([recipientFingerprint(recovery.recipient)]);
    expect(items.map((i) => i.jobId)).not.toContain(onBoth.id);
    expect(items.map((i) => i.jobId)).not.toContain(expired.id);

    const denied = await invoke(listRetiredRecipientCopies, { method: 'GET', path: 'recipients/retired-copies', token: requester(oid) });
    expect(denied.status).toBe(403);
  });
});
