import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEXT_CURSOR_HEADER, queryAudit } from '../../functions/audit.js';
import type { AuditEntry } from '../../shared/db/store.js';
import { type TestDeps, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
const jobId = randomUUID();
const base = Date.parse('2026-10-01T12:00:00Z');
const at = (minutes: number) => new Date(base + minutes * 60_000);

beforeAll(async () => {
  t = await startTestDeps();
  const rows: AuditEntry[] = [
    { actorType: 'user', actorId: 'oid-alice', actorName: 'alice@contoso.example', action: 'job.requested', target: `job/${jobId}`, jobId, at: at(0), ip: '198.51.100.1', userAgent: 'curl/8.0' },
    { actorType: 'system', actorId: 'orchestrator', action: 'job.queued', target: `job/${jobId}`, jobId, at: at(1) },
    { actorType: 'app', actorId: 'oid-runner', actorName: 'runner', action: 'sas.upload_issued', target: `job/${jobId}`, jobId, at: at(2), detail: { blobPath: 'backups/x.bak' } },
    { actorType: 'user', actorId: 'oid-alice', actorName: 'alice@contoso.example', action: 'sas.download_issued', target: `job/${jobId}`, jobId, at: at(10) },
    // Hostile values: a formula, quotes, commas and a line break must come out inert in the CSV.
    { actorType: 'user', actorId: 'oid-mallory', actorName: '=HYPERLINK("http://evil.example","x")', action: 'sas.download_denied', target: `job/${jobId}`, jobId, at: at(11), userAgent: 'Evil, "Agent"\r\n+1', detail: { note: '@SUM(A1)' } },
    { actorType: 'user', actorId: 'oid-bob', actorName: 'bob@contoso.example', action: 'server.created', target: 'server/1', at: at(20) },
  ];
  for (const row of rows) await t.deps.store.appendAudit(row);
});
afterAll(() => t?.close());

const query = (q: Record<string, string>, token = t.tokens.auditor()) => invoke(queryAudit, { path: 'audit', query: q, token });
const actions = (res: { json: { items: Array<{ action: string }> } }) => res.json.items.map((e) => e.action);

describe('GET /api/audit', () => {
  it('filters by job, action, actor (id or name) and time range, newest first', async () => {
    expect(actions(await query({ jobId }))).toEqual(['sas.download_denied', 'sas.download_issued', 'sas.upload_issued', 'job.queued', 'job.requested']);
    expect(actions(await query({ action: 'sas.upload_issued' }))).toEqual(['sas.upload_issued']);
    expect(actions(await query({ actor: 'oid-alice' }))).toEqual(['sas.download_issued', 'job.requested']);
    expect(actions(await query({ actor: 'bob@contoso.example' }))).toEqual(['server.created']);
    expect(actions(await query({ from: at(1).toISOString(), to: at(10).toISOString() }))).toEqual(['sas.download_issued', 'sas.upload_issued', 'job.queued']);
  });

  it('pages with a cursor', async () => {
    const first = await query({ jobId, limit: '2' });
    const second = await query({ jobId, limit: '2', cursor: first.json.nextCursor });
    const third = await query({ jobId, limit: '2', cursor: second.json.nextCursor });
    expect([...actions(first), ...actions(second), ...actions(third)]).toEqual(actions(await query({ jobId })));
    expect(third.json.nextCursor).toBeUndefined();
  });

  it('is open to Admins as well as Auditors', async () => {
    expect((await query({ jobId }, t.tokens.admin())).status).toBe(200);
  });

  it('rejects bad filters, naming the query field', async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ from: at(5).toISOString(), to: at(1).toISOString() }, 'query.from'],
      [{ action: 'job.exploded' }, 'query.action'],
      [{ format: 'xml' }, 'query.format'],
      [{ jobId: 'not-a-guid' }, 'query.jobId'],
      [{ limit: '1000' }, 'query.limit'],
    ];
    for (const [q, field] of cases) {
      const res = await query(q);
      expect(res.status, JSON.stringify(q)).toBe(400);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.json.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
  });
});

/** A small RFC 4180 reader, enough to check what a spreadsheet would see. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += c;
  }
  return rows;
}

describe('GET /api/audit?format=csv', () => {
  it('returns text/csv with a header row, one row per event, CRLF line ends', async () => {
    const res = await query({ jobId, format: 'csv' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(res.text.endsWith('\r\n')).toBe(true);
    const rows = parseCsv(res.text);
    expect(rows[0]).toEqual(['id', 'at', 'actorType', 'actorId', 'actorName', 'action', 'target', 'jobId', 'ip', 'userAgent', 'detail']);
    expect(rows.slice(1).map((r) => r[5])).toEqual(actions(await query({ jobId })));
    expect(rows.every((r) => r.length === rows[0]!.length)).toBe(true);
  });

  it('quotes per RFC 4180 and neutralises formulas', async () => {
    const rows = parseCsv((await query({ actor: 'oid-mallory', format: 'csv' })).text);
    const [header, mallory] = rows as [string[], string[]];
    const cell = (name: string) => mallory[header.indexOf(name)]!;
    expect(cell('actorName')).toBe(`'=HYPERLINK("http://evil.example","x")`);
    expect(cell('userAgent')).toBe('Evil, "Agent"\r\n+1');
    expect(JSON.parse(cell('detail'))).toEqual({ note: '@SUM(A1)' });
    for (const value of mallory) expect(value).not.toMatch(/^[=+\-@]/);
  });

  it('puts the next page’s cursor in a header', async () => {
    const res = await query({ jobId, format: 'csv', limit: '2' });
    expect(parseCsv(res.text)).toHaveLength(3);
    const next = res.headers.get(NEXT_CURSOR_HEADER);
    expect(next).toBeTruthy();
    expect(parseCsv((await query({ jobId, format: 'csv', limit: '2', cursor: next! })).text)).toHaveLength(3);
  });
});
