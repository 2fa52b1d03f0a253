/** Approver: the jobs awaiting approval (all databases), approve or reject each with a reason. */
import { useCallback, useEffect, useState } from 'react';
import type { JobView } from '../../../shared/contracts/jobs';
import type { Api } from '../api';
import { Problem, Status, TableScroll, formatTime } from '../components';

export function ApproverPage({ api }: { api: Api }) {
  const [jobs, setJobs] = useState<JobView[]>();
  const [reasons, setReasons] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState('');

  const load = useCallback(async () => {
    try {
      setJobs((await api.get<{ items: JobView[] }>('jobs?status=AwaitingApproval&limit=100')).items);
    } catch (caught) {
      setError(caught);
    }
  }, [api]);
  useEffect(() => void load(), [load]);

  async function decide(job: JobView, verb: 'approve' | 'reject') {
    setError(undefined);
    const reason = reasons[job.id]?.trim();
    try {
      await api.send('POST', `jobs/${job.id}/${verb}`, reason ? { reason } : {});
      setNotice(`${verb === 'approve' ? 'Approved' : 'Rejected'} the request for ${job.databaseName}.`);
      await load();
    } catch (caught) {
      setError(caught);
    }
  }

  return (
    <section className="card">
      <h1>Pending approvals</h1>
      <p>Requests for raw copies of databases that need an approver. You cannot approve your own request; a rejection needs a reason.</p>
      {error !== undefined && <Problem error={error} />}
      {notice && <Status>{notice}</Status>}
      {jobs && jobs.length === 0 && <p>Nothing awaits approval.</p>}
      {jobs && jobs.length > 0 && (
        <TableScroll label="Jobs awaiting approval">
          <table>
            <thead>
              <tr>
                <th scope="col">Database</th>
                <th scope="col">Requested by</th>
                <th scope="col">Requested</th>
                <th scope="col">Reason</th>
                <th scope="col">Decision</th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((job) => (
                <tr key={job.id}>
                  <td>{job.databaseName}</td>
                  <td>{job.requestedBy.upn ?? job.requestedBy.oid}</td>
                  <td>{formatTime(job.createdAt)}</td>
                  <td>
                    <label>
                      <span className="visually-hidden">Reason for {job.databaseName}</span>
                      <input
                        type="text"
                        maxLength={500}
                        value={reasons[job.id] ?? ''}
                        onChange={(event) => setReasons({ ...reasons, [job.id]: event.target.value })}
                      />
                    </label>
                  </td>
                  <td>
                    <button type="button" onClick={() => void decide(job, 'approve')}>
                      Approve
                    </button>{' '}
                    <button type="button" className="secondary" disabled={!reasons[job.id]?.trim()} onClick={() => void decide(job, 'reject')}>
                      Reject
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
    </section>
  );
}
