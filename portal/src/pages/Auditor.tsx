/** Auditor: search the audit trail with filters, page through it, export it as CSV, open a job's details. */
import { type FormEvent, useState } from 'react';
import type { AuditEventView } from '../../../shared/contracts/audit';
import type { JobView } from '../../../shared/contracts/jobs';
import type { Api } from '../api';
import { Problem, Status, TableScroll, formatBytes, formatTime } from '../components';

/** Same list as shared/contracts/audit.ts (a value import there would bundle zod into the page). */
const actions = [
  'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed',
  'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'sas.download_issued', 'sas.download_denied',
  'sas.upload_issued', 'server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated',
  'database.deleted',
];

interface Filters {
  from: string;
  to: string;
  actor: string;
  action: string;
  jobId: string;
}

/** `datetime-local` is local time without a zone: the API wants an ISO instant. */
const toIso = (local: string) => (local ? new Date(local).toISOString() : '');

function queryString(filters: Filters, extra: Record<string, string>): string {
  const params = new URLSearchParams();
  const values: Record<string, string> = { ...filters, from: toIso(filters.from), to: toIso(filters.to), ...extra };
  for (const [key, value] of Object.entries(values)) if (value.trim()) params.set(key, value.trim());
  return params.toString();
}

export function AuditorPage({ api }: { api: Api }) {
  const [filters, setFilters] = useState<Filters>({ from: '', to: '', actor: '', action: '', jobId: '' });
  const [rows, setRows] = useState<AuditEventView[]>();
  const [cursor, setCursor] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState('');
  const [job, setJob] = useState<JobView>();

  const field = (name: keyof Filters) => ({
    value: filters[name],
    onChange: (event: { target: { value: string } }) => setFilters({ ...filters, [name]: event.target.value }),
  });

  async function search(event?: FormEvent, after?: string) {
    event?.preventDefault();
    setError(undefined);
    try {
      const { body, headers } = await api.getWithHeaders<{ items: AuditEventView[]; nextCursor?: string }>(
        `/api/audit?${queryString(filters, { limit: '100', ...(after ? { cursor: after } : {}) })}`,
      );
      setRows(after ? [...(rows ?? []), ...body.items] : body.items);
      setCursor(body.nextCursor ?? headers.get('x-next-cursor') ?? undefined);
      setNotice(`${after ? 'More rows loaded' : `${body.items.length} rows found`}.`);
    } catch (failure) {
      setError(failure);
    }
  }

  async function exportCsv() {
    setError(undefined);
    try {
      const blob = await api.getBlob(`/api/audit?${queryString(filters, { format: 'csv', limit: '200' })}`);
      const url = URL.createObjectURL(blob);
      const anchor = document.createElement('a');
      anchor.href = url;
      anchor.download = `dbdist-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`;
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
      URL.revokeObjectURL(url);
      setNotice('CSV export downloaded.');
    } catch (failure) {
      setError(failure);
    }
  }

  async function openJob(jobId: string) {
    setError(undefined);
    try {
      setJob(await api.get<JobView>(`/api/jobs/${jobId}`));
    } catch (failure) {
      setError(failure);
    }
  }

  return (
    <>
      <h1>Audit trail</h1>
      <section className="card" aria-labelledby="filters-heading">
        <h2 id="filters-heading">Filters</h2>
        <form onSubmit={(event) => void search(event)} className="form-grid">
          <label>
            From
            <input type="datetime-local" {...field('from')} />
          </label>
          <label>
            To
            <input type="datetime-local" {...field('to')} />
          </label>
          <label>
            Actor (user name or id)
            <input {...field('actor')} />
          </label>
          <label>
            Action
            <select {...field('action')}>
              <option value="">any</option>
              {actions.map((action) => (
                <option key={action}>{action}</option>
              ))}
            </select>
          </label>
          <label>
            Job id
            <input {...field('jobId')} />
          </label>
          <div className="wide buttons">
            <button type="submit">Search</button>
            <button type="button" className="secondary" onClick={() => void exportCsv()}>
              Export CSV
            </button>
          </div>
        </form>
        <Problem error={error} />
        {notice && <Status>{notice}</Status>}
      </section>
      {job && (
        <section className="card" aria-labelledby="job-heading">
          <h2 id="job-heading">Job {job.id}</h2>
          <dl className="details">
            <dt>Database</dt>
            <dd>{job.databaseName} ({job.engine})</dd>
            <dt>Status</dt>
            <dd>{job.status}</dd>
            <dt>Requested by</dt>
            <dd>{job.requestedBy.upn ?? job.requestedBy.oid} ({job.trigger})</dd>
            <dt>Requested</dt>
            <dd>{formatTime(job.createdAt)}</dd>
            <dt>Completed</dt>
            <dd>{formatTime(job.completedAt)}</dd>
            <dt>Size</dt>
            <dd>{formatBytes(job.sizeBytes)}</dd>
            <dt>SHA-256</dt>
            <dd><code>{job.sha256 ?? '—'}</code></dd>
            <dt>Error</dt>
            <dd>{job.error ? `${job.error.code}: ${job.error.message}` : '—'}</dd>
          </dl>
        </section>
      )}
      {rows && (
        <section className="card" aria-labelledby="rows-heading">
          <h2 id="rows-heading">Events</h2>
          <TableScroll label="Audit events">
            <table>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Job</th>
                  <th scope="col">From</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr key={row.id}>
                    <td>{formatTime(row.at)}</td>
                    <td>
                      {row.actorName ?? row.actorId}
                      <span className="sub">{row.actorType}</span>
                    </td>
                    <td>{row.action}</td>
                    <td>
                      {row.jobId ? (
                        <button type="button" className="link" onClick={() => void openJob(row.jobId!)} aria-label={`Show job ${row.jobId}`}>
                          {row.jobId.slice(0, 8)}…
                        </button>
                      ) : (
                        '—'
                      )}
                    </td>
                    <td>{row.ip ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
          {cursor && (
            <button type="button" className="secondary" onClick={() => void search(undefined, cursor)}>
              Load more
            </button>
          )}
        </section>
      )}
    </>
  );
}
