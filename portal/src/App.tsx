import { useEffect, useMemo, useState } from 'react';
import { createApi } from './api';
import type { Auth } from './auth';
import type { PortalConfig } from './config';
import { RequesterPage } from './pages/Requester';
import { AuditorPage } from './pages/Auditor';
import { AdminPage } from './pages/Admin';
import { ApproverPage } from './pages/Approver';

const pages = [
  { route: 'request', label: 'My backups', Page: RequesterPage },
  { route: 'approvals', label: 'Approvals', Page: ApproverPage },
  { route: 'audit', label: 'Audit', Page: AuditorPage },
  { route: 'admin', label: 'Admin', Page: AdminPage },
] as const;
type Route = (typeof pages)[number]['route'];

function currentRoute(): Route {
  const hash = window.location.hash.replace(/^#\/?/, '');
  return pages.find((page) => page.route === hash)?.route ?? 'request';
}

export function App({ config, auth }: { config: PortalConfig; auth: Auth }) {
  const [route, setRoute] = useState<Route>(currentRoute);
  const api = useMemo(() => createApi(config.apiBaseUrl, () => auth.getApiToken()), [config, auth]);

  useEffect(() => {
    const onHashChange = () => setRoute(currentRoute());
    window.addEventListener('hashchange', onHashChange);
    return () => window.removeEventListener('hashchange', onHashChange);
  }, []);

  const active = pages.find((page) => page.route === route)!;
  useEffect(() => {
    document.title = `${active.label} · dbdist`;
  }, [active]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="top">
        <div className="brand">
          <span className="logo" aria-hidden="true">
            ⛁
          </span>
          <span>dbdist</span>
          {config.environmentName && <span className="env">{config.environmentName}</span>}
        </div>
        {auth.account && (
          <nav aria-label="Pages">
            <ul>
              {pages.map((page) => (
                <li key={page.route}>
                  <a href={`#/${page.route}`} aria-current={page.route === route ? 'page' : undefined}>
                    {page.label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        )}
        <div className="who">
          {auth.account ? (
            <>
              <span>{auth.account.username}</span>
              <button type="button" className="secondary" onClick={() => void auth.signOut()}>
                Sign out
              </button>
            </>
          ) : null}
        </div>
      </header>
      <main id="main" className="page" tabIndex={-1}>
        {auth.account ? (
          <active.Page api={api} />
        ) : (
          <section className="card sign-in">
            <h1>Copies of SQL databases, handed out safely</h1>
            <p>Sign in with your work account to request a backup, download it, or review the audit trail.</p>
            <button type="button" onClick={() => void auth.signIn()}>
              Sign in
            </button>
          </section>
        )}
      </main>
    </>
  );
}
