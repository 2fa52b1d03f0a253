/**
 * Requester: the databases I may request, a request form, my jobs with live status, and downloads. A download
 * link is minted on click, handed to the browser and dropped: only its size and SHA-256 stay on the page.
 */
import { type FormEvent, useCallback, useEffect, useRef, useState } from 'react';
import type { DownloadLink, JobView } from '../../../shared/contracts/jobs';
import type { DatabaseView } from '../../../shared/contracts/servers';
import type { Api } from '../api';
import { Problem, Status, TableScroll, formatBytes, formatTime } from '../components';

/** Statuses after which a job no longer changes on its own (besides expiry). */
const settledStatuses = ['Available', 'Expired', 'Failed', 'Cancelled', 'Rejected'];
const cancellableStatuses = ['Pending', 'Queued', 'Running', 'AwaitingApproval'];
const POLL_FIRST_MS = 1_000;
const POLL_MAX_MS = 15_000;

interface Receipt {
  jobId: string;
  fileName: string;
  sizeBytes: number;
  sha256: string;
  expiresAt: string;
}

export function RequesterPage({ api }: { api: Api }) {
  const [jobs, setJobs] = useState<JobView[]>([]);
  const [jobsError, setJobsError] = useState<unknown>();
  const [actionError, setActionError] = useState<unknown>();
  const [receipt, setReceipt] = useState<Receipt>();
  const [notice, setNotice] = useState('');

  const loadJobs = useCallback(async () => {
    try {
      const page = await api.get<{ items: JobView[] }>('/api/jobs?limit=50');
      setJobs(page.items);
      setJobsError(undefined);
      return page.items;
    } catch (error) {
      setJobsError(error);
      return undefined;
    }
  }, [api]);

  useJobPolling(jobs, loadJobs);

  async function act(work: () => Promise<void>) {
    setActionError(undefined);
    try {
      await work();
    } catch (error) {
      setActionError(error);
    }
  }

  /** Throws the API's refusal, for the caller to show where the person clicked. */
  async function mintAndDownload(jobId: string) {
    const link = await api.send<DownloadLink>('POST', `/api/jobs/${jobId}/download-link`, {});
    setReceipt({ jobId, fileName: link.fileName, sizeBytes: link.sizeBytes, sha256: link.sha256, expiresAt: link.expiresAt });
    startBrowserDownload(link.url);
    setNotice(`Download of ${link.fileName} started.`);
  }
  const download = (jobId: string) => act(() => mintAndDownload(jobId));

  const cancel = (job: JobView) =>
    act(async () => {
      await api.send('POST', `/api/jobs/${job.id}/cancel`);
      setNotice(`Cancel of the ${job.databaseName} backup requested.`);
      await loadJobs();
    });

  const deleteBackup = (job: JobView) =>
    act(async () => {
      if (!window.confirm(`Delete the backup of ${job.databaseName} now? The link stops working.`)) return;
      await api.send('DELETE', `/api/jobs/${job.id}/backup`);
      setNotice(`The backup of ${job.databaseName} is being deleted.`);
      await loadJobs();
    });

  return (
    <>
      <h1>My backups</h1>
      <RequestForm
        api={api}
        onRequested={(job) => {
          setNotice(`Backup of ${job.databaseName} requested (${job.status}).`);
          void loadJobs();
        }}
      />
      <section className="card" aria-labelledby="jobs-heading">
        <h2 id="jobs-heading">My jobs</h2>
        {notice && <Status>{notice}</Status>}
        <Problem error={jobsError} />
        <Problem error={actionError} />
        {receipt && <DownloadReceipt receipt={receipt} />}
        {jobs.length === 0 && !jobsError ? (
          <p>No backups yet.</p>
        ) : (
          <TableScroll label="My jobs">
            <table>
              <thead>
                <tr>
                  <th scope="col">Database</th>
                  <th scope="col">Status</th>
                  <th scope="col">Requested</th>
                  <th scope="col">Size</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {jobs.map((job) => (
                  <tr key={job.id} data-job-id={job.id}>
                    <th scope="row">
                      {job.databaseName}
                      <span className="sub">{job.engine} · {job.options.compression}{job.options.encryption !== 'none' ? ` · encrypted (${job.options.encryption})` : ''}</span>
                    </th>
                    <td>
                      <JobStatusCell job={job} />
                    </td>
                    <td>{formatTime(job.createdAt)}</td>
                    <td>{formatBytes(job.sizeBytes)}</td>
                    <td>{formatTime(job.expiresAt)}</td>
                    <td className="actions">
                      {job.status === 'Available' && (
                        <>
                          <button type="button" onClick={() => void download(job.id)} aria-label={`Download the ${job.databaseName} backup`}>
                            Download
                          </button>
                          <button type="button" className="secondary" onClick={() => void deleteBackup(job)} aria-label={`Delete now: the ${job.databaseName} backup`}>
                            Delete now
                          </button>
                        </>
                      )}
                      {cancellableStatuses.includes(job.status) && (
                        <button type="button" className="secondary" onClick={() => void cancel(job)} aria-label={`Cancel the ${job.databaseName} backup`}>
                          Cancel
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
        )}
      </section>
      <JobLookup onDownload={mintAndDownload} api={api} />
    </>
  );
}

/** Polls while any job is still moving: quickly at first, backing off while nothing changes. */
function useJobPolling(jobs: JobView[], load: () => Promise<JobView[] | undefined>) {
  const delay = useRef(POLL_FIRST_MS);
  const fingerprint = (list: JobView[]) => list.map((job) => `${job.id}:${job.status}:${job.progress?.percent ?? ''}`).join('|');
  const last = useRef('');
  const moving = jobs.some((job) => !settledStatuses.includes(job.status));

  useEffect(() => {
    void load();
  }, [load]);

  useEffect(() => {
    if (!moving) {
      delay.current = POLL_FIRST_MS;
      return;
    }
    const timer = window.setTimeout(async () => {
      const next = await load();
      const seen = next ? fingerprint(next) : last.current;
      delay.current = seen === last.current ? Math.min(delay.current * 1.6, POLL_MAX_MS) : POLL_FIRST_MS;
      last.current = seen;
    }, delay.current);
    return () => window.clearTimeout(timer);
  }, [jobs, moving, load]);
}

/** Hands the link to the browser's download manager; nothing keeps it afterwards. */
function startBrowserDownload(url: string) {
  const anchor = document.createElement('a');
  anchor.href = url;
  anchor.rel = 'noreferrer';
  anchor.style.display = 'none';
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
}

function JobStatusCell({ job }: { job: JobView }) {
  const percent = job.progress?.percent;
  return (
    <div className="job-status">
      <span className={`badge badge-${job.status.toLowerCase()}`}>{job.status}</span>
      {percent !== undefined && !settledStatuses.includes(job.status) && (
        <progress max={100} value={percent} aria-label={`${job.databaseName} backup progress`}>
          {percent}%
        </progress>
      )}
      {job.error && <span className="sub">{job.error.message}</span>}
    </div>
  );
}

function DownloadReceipt({ receipt }: { receipt: Receipt }) {
  const check = `echo "${receipt.sha256}  ${receipt.fileName}" | sha256sum --check`;
  return (
    <section className="receipt" aria-labelledby="receipt-heading">
      <h3 id="receipt-heading">Check your download</h3>
      <dl>
        <dt>File</dt>
        <dd>{receipt.fileName}</dd>
        <dt>Size</dt>
        <dd>{formatBytes(receipt.sizeBytes)}</dd>
        <dt>SHA-256</dt>
        <dd>
          <code data-testid="receipt-sha256">{receipt.sha256}</code>
        </dd>
        <dt>Link valid until</dt>
        <dd>{formatTime(receipt.expiresAt)} (ask again for a new link; this page keeps none)</dd>
      </dl>
      <p>In the folder you saved it to:</p>
      <pre tabIndex={0} aria-label="Command to check the download">{check}</pre>
      <p className="sub">
        On Windows: <code>(Get-FileHash {receipt.fileName} -Algorithm SHA256).Hash</code> and compare.
      </p>
    </section>
  );
}

/** Databases the signed-in person may request, and the request form. */
function RequestForm({ api, onRequested }: { api: Api; onRequested: (job: JobView) => void }) {
  const [databases, setDatabases] = useState<DatabaseView[]>();
  const [catalogMissing, setCatalogMissing] = useState(false);
  const [loadError, setLoadError] = useState<unknown>();
  const [databaseId, setDatabaseId] = useState('');
  const [compression, setCompression] = useState('gzip');
  const [encryption, setEncryption] = useState(false);
  const [reason, setReason] = useState('');
  const [submitError, setSubmitError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    (async () => {
      // An API without the requester catalogue: the database id is typed in instead.
      if (!(await api.features()).requestableDatabases) return setCatalogMissing(true);
      const page = await api.get<{ items: DatabaseView[] }>('/api/databases');
      setDatabases(page.items);
      if (page.items[0]) setDatabaseId((current) => current || page.items[0]!.id);
    })().catch(setLoadError);
  }, [api]);

  const selected = databases?.find((database) => database.id === databaseId);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setSubmitError(undefined);
    setBusy(true);
    try {
      const job = await api.send<JobView>('POST', '/api/jobs', {
        databaseId: databaseId.trim(),
        options: { compression, encryption: encryption ? 'age' : 'none' },
        ...(reason.trim() ? { reason: reason.trim() } : {}),
      });
      setReason('');
      onRequested(job);
    } catch (error) {
      setSubmitError(error);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="request-heading">
      <h2 id="request-heading">Request a copy</h2>
      <Problem error={loadError} />
      {databases && databases.length === 0 && <p>No database lists you among its requesters. Ask an admin to add your group.</p>}
      <form onSubmit={(event) => void submit(event)} className="form-grid">
        {!catalogMissing && !databases && !loadError ? (
          // Until the catalogue answers: neither the list nor the id field, so the form does not swap under the user.
          <p role="status">Loading the databases you may request…</p>
        ) : catalogMissing || !databases ? (
          <label>
            Database id
            <input value={databaseId} onChange={(event) => setDatabaseId(event.target.value)} required placeholder="00000000-0000-4000-8000-000000000000" />
            <span className="hint">This API does not list the databases you may request; paste the id you were given.</span>
          </label>
        ) : (
          <label>
            {/* Named by this text alone: a wrapping label's name would also take in the selected option's text. */}
            <span id="request-database-label">Database</span>
            <select aria-labelledby="request-database-label" value={databaseId} onChange={(event) => setDatabaseId(event.target.value)} required>
              {databases.map((database) => (
                <option key={database.id} value={database.id}>
                  {database.name}
                </option>
              ))}
            </select>
          </label>
        )}
        {selected?.policy && (
          // Optional chaining: the requester catalogue may show a subset of the admin's policy fields.
          <dl className="policy" aria-label={`Policy of ${selected.name}`}>
            <dt>Engines</dt>
            <dd>{selected.policy.allowedEngines?.join(', ') ?? 'any'}</dd>
            <dt>Link lifetime</dt>
            <dd>up to {selected.policy.maxSasTtlMinutes ?? '—'} minutes</dd>
            <dt>Kept for</dt>
            <dd>{selected.policy.retentionDays ?? '—'} days</dd>
            {Object.entries(selected.policy)
              .filter(([key]) => !['allowedEngines', 'maxSasTtlMinutes', 'retentionDays', 'acceptTimeoutMinutes', 'runTimeoutMinutes'].includes(key))
              .map(([key, value]) => (
                <div key={key} className="policy-extra">
                  <dt>{key}</dt>
                  <dd>{typeof value === 'object' ? JSON.stringify(value) : String(value)}</dd>
                </div>
              ))}
          </dl>
        )}
        <label>
          Compression
          <select value={compression} onChange={(event) => setCompression(event.target.value)}>
            <option value="gzip">gzip</option>
            <option value="zstd">zstd</option>
            <option value="none">none</option>
          </select>
        </label>
        <label className="checkbox">
          <input type="checkbox" checked={encryption} onChange={(event) => setEncryption(event.target.checked)} />
          Encrypt with age to my registered public key (PUT /api/me/recipients)
        </label>
        <label className="wide">
          Reason (shown in the audit trail)
          <textarea value={reason} onChange={(event) => setReason(event.target.value)} maxLength={500} rows={2} placeholder="e.g. ticket OPS-1234" />
        </label>
        <div className="wide">
          <button type="submit" disabled={busy || !databaseId}>
            {busy ? 'Requesting…' : 'Request backup'}
          </button>
        </div>
      </form>
      <Problem error={submitError} />
    </section>
  );
}

/** A job someone shared by id: show it, or try to download it (the API decides who may). */
function JobLookup({ api, onDownload }: { api: Api; onDownload: (jobId: string) => Promise<void> }) {
  const [jobId, setJobId] = useState('');
  const [job, setJob] = useState<JobView>();
  const [error, setError] = useState<unknown>();

  async function show(event: FormEvent) {
    event.preventDefault();
    setError(undefined);
    setJob(undefined);
    try {
      setJob(await api.get<JobView>(`/api/jobs/${encodeURIComponent(jobId.trim())}`));
    } catch (failure) {
      setError(failure);
    }
  }

  return (
    <section className="card" aria-labelledby="lookup-heading">
      <h2 id="lookup-heading">Find a job by id</h2>
      <form onSubmit={(event) => void show(event)} className="inline-form">
        <label>
          Job id
          <input value={jobId} onChange={(event) => setJobId(event.target.value)} required />
        </label>
        <button type="submit">Show</button>
        <button
          type="button"
          className="secondary"
          disabled={!jobId.trim()}
          onClick={() => {
            setError(undefined);
            onDownload(jobId.trim()).catch(setError);
          }}
        >
          Download
        </button>
      </form>
      <Problem error={error} />
      {job && (
        <dl className="details">
          <dt>Database</dt>
          <dd>{job.databaseName}</dd>
          <dt>Status</dt>
          <dd>{job.status}</dd>
          <dt>Requested by</dt>
          <dd>{job.requestedBy.upn ?? job.requestedBy.oid}</dd>
          <dt>SHA-256</dt>
          <dd>{job.sha256 ?? '—'}</dd>
        </dl>
      )}
    </section>
  );
}
