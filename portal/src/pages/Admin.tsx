/** Admin: registered servers and their databases (with policy), and the API's readiness. */
import { type FormEvent, useCallback, useEffect, useState } from 'react';
import type { DatabaseView, ServerView } from '../../../shared/contracts/servers';
import type { Api } from '../api';
import { Problem, Status, TableScroll } from '../components';

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function AdminPage({ api }: { api: Api }) {
  const [servers, setServers] = useState<ServerView[]>([]);
  const [serverId, setServerId] = useState('');
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState('');

  const loadServers = useCallback(async () => {
    try {
      const page = await api.get<{ items: ServerView[] }>('/api/servers');
      setServers(page.items);
      setServerId((current) => current || page.items[0]?.id || '');
    } catch (failure) {
      setError(failure);
    }
  }, [api]);

  useEffect(() => {
    void loadServers();
  }, [loadServers]);

  return (
    <>
      <h1>Administration</h1>
      {notice && <Status>{notice}</Status>}
      <Problem error={error} />
      <ServerSection
        api={api}
        servers={servers}
        onCreated={(server) => {
          setNotice(`Server ${server.name} registered.`);
          setServerId(server.id);
          void loadServers();
        }}
      />
      {servers.length > 0 && (
        <DatabaseSection api={api} servers={servers} serverId={serverId} onServerChange={setServerId} onNotice={setNotice} />
      )}
      <HealthSection api={api} />
    </>
  );
}

function ServerSection({ api, servers, onCreated }: { api: Api; servers: ServerView[]; onCreated: (server: ServerView) => void }) {
  const [name, setName] = useState('');
  const [host, setHost] = useState('');
  const [engine, setEngine] = useState('postgres');
  const [error, setError] = useState<unknown>();

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(undefined);
    try {
      const server = await api.send<ServerView>('POST', '/api/servers', { name, host, engine });
      setName('');
      setHost('');
      onCreated(server);
    } catch (failure) {
      setError(failure);
    }
  }

  return (
    <section className="card" aria-labelledby="servers-heading">
      <h2 id="servers-heading">Servers</h2>
      {servers.length === 0 ? (
        <p>No servers registered yet.</p>
      ) : (
        <TableScroll label="Servers">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Host</th>
                <th scope="col">Engine</th>
              </tr>
            </thead>
            <tbody>
              {servers.map((server) => (
                <tr key={server.id}>
                  <th scope="row">{server.name}</th>
                  <td>{server.host}</td>
                  <td>{server.engine}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      <h3>Register a server</h3>
      <form onSubmit={(event) => void submit(event)} className="form-grid">
        <label>
          Name
          <input value={name} onChange={(event) => setName(event.target.value)} required maxLength={128} />
        </label>
        <label>
          Host (as the runner reaches it)
          <input value={host} onChange={(event) => setHost(event.target.value)} required placeholder="sql01\PROD or db.internal:5432" />
        </label>
        <label>
          Engine
          <select value={engine} onChange={(event) => setEngine(event.target.value)}>
            <option value="postgres">PostgreSQL</option>
            <option value="sqlserver">SQL Server</option>
          </select>
        </label>
        <div className="wide">
          <button type="submit">Register server</button>
        </div>
      </form>
      <Problem error={error} />
    </section>
  );
}

function DatabaseSection(props: {
  api: Api;
  servers: ServerView[];
  serverId: string;
  onServerChange: (id: string) => void;
  onNotice: (text: string) => void;
}) {
  const { api, servers, serverId, onServerChange, onNotice } = props;
  const [databases, setDatabases] = useState<DatabaseView[]>([]);
  const [loadError, setLoadError] = useState<unknown>();
  const [name, setName] = useState('');
  const [groups, setGroups] = useState('');
  const [linkMinutes, setLinkMinutes] = useState('60');
  const [retentionDays, setRetentionDays] = useState('7');
  const [cron, setCron] = useState('');
  const [error, setError] = useState<unknown>();

  const load = useCallback(async () => {
    if (!serverId) return;
    try {
      setDatabases((await api.get<{ items: DatabaseView[] }>(`/api/servers/${serverId}/databases`)).items);
      setLoadError(undefined);
    } catch (failure) {
      setLoadError(failure);
    }
  }, [api, serverId]);

  useEffect(() => {
    void load();
  }, [load]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(undefined);
    const requesterGroupIds = groups.split(/[\s,]+/).filter(Boolean);
    const bad = requesterGroupIds.filter((id) => !uuidPattern.test(id));
    if (bad.length > 0) {
      setError(new Error(`Requester groups must be Entra group object ids (GUIDs); not: ${bad.join(', ')}`));
      return;
    }
    try {
      const database = await api.send<DatabaseView>('POST', `/api/servers/${serverId}/databases`, {
        name,
        requesterGroupIds,
        policy: { maxSasTtlMinutes: Number(linkMinutes), retentionDays: Number(retentionDays) },
        schedule: cron.trim() ? { cron: cron.trim() } : null,
      });
      setName('');
      setGroups('');
      setCron('');
      onNotice(`Database ${database.name} registered.`);
      await load();
    } catch (failure) {
      setError(failure);
    }
  }

  return (
    <section className="card" aria-labelledby="databases-heading">
      <h2 id="databases-heading">Databases and policies</h2>
      <label className="inline">
        Server
        <select value={serverId} onChange={(event) => onServerChange(event.target.value)}>
          {servers.map((server) => (
            <option key={server.id} value={server.id}>
              {server.name}
            </option>
          ))}
        </select>
      </label>
      <Problem error={loadError} />
      {databases.length === 0 ? (
        <p>No databases registered on this server.</p>
      ) : (
        <TableScroll label="Databases">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Requester groups</th>
                <th scope="col">Link lifetime</th>
                <th scope="col">Retention</th>
                <th scope="col">Schedule</th>
                <th scope="col">Enabled</th>
              </tr>
            </thead>
            <tbody>
              {databases.map((database) => (
                <tr key={database.id}>
                  <th scope="row">{database.name}</th>
                  <td>{database.requesterGroupIds.length === 0 ? 'none' : database.requesterGroupIds.map((id) => <code key={id}>{id}</code>)}</td>
                  <td>{database.policy.maxSasTtlMinutes} min</td>
                  <td>{database.policy.retentionDays} days</td>
                  <td>{database.schedule?.cron ?? '—'}</td>
                  <td>{database.enabled ? 'yes' : 'no'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      <h3>Register a database</h3>
      <form onSubmit={(event) => void submit(event)} className="form-grid">
        <label>
          Database name
          <input value={name} onChange={(event) => setName(event.target.value)} required maxLength={128} />
        </label>
        <label className="wide">
          Requester groups (Entra group object ids, comma-separated)
          <input value={groups} onChange={(event) => setGroups(event.target.value)} />
        </label>
        <label>
          Longest download link (minutes)
          <input type="number" min={1} max={10080} value={linkMinutes} onChange={(event) => setLinkMinutes(event.target.value)} required />
        </label>
        <label>
          Keep backups (days)
          <input type="number" min={1} max={3650} value={retentionDays} onChange={(event) => setRetentionDays(event.target.value)} required />
        </label>
        <label>
          Schedule (cron, UTC; optional)
          <input value={cron} onChange={(event) => setCron(event.target.value)} placeholder="0 3 * * *" />
        </label>
        <div className="wide">
          <button type="submit">Register database</button>
        </div>
      </form>
      <Problem error={error} />
    </section>
  );
}

interface Readiness {
  status: string;
  checks?: { name: string; ok: boolean }[];
}

/** The API's own readiness (store, Blob Storage, Service Bus). Runner health appears when the API reports it. */
function HealthSection({ api }: { api: Api }) {
  const [health, setHealth] = useState<Readiness>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    api.get<Readiness>('/api/health/ready').then(setHealth, setError);
  }, [api]);
  return (
    <section className="card" aria-labelledby="health-heading">
      <h2 id="health-heading">Health</h2>
      <Problem error={error} />
      {health && (
        <ul className="checks">
          {(health.checks ?? [{ name: 'api', ok: health.status === 'ok' }]).map((check) => (
            <li key={check.name}>
              <span className={check.ok ? 'ok' : 'bad'}>{check.ok ? '✓' : '✗'}</span> {check.name}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
