import { createRoot } from 'react-dom/client';
import { StrictMode } from 'react';
import { App } from './App';
import { createAuth } from './auth';
import { loadConfig } from './config';
import { errorMessage } from './api';
import './styles.css';

const root = createRoot(document.getElementById('root')!);

try {
  const config = await loadConfig();
  const auth = await createAuth(config);
  root.render(
    <StrictMode>
      <App config={config} auth={auth} />
    </StrictMode>,
  );
} catch (error) {
  root.render(
    <main className="page">
      <h1>dbdist</h1>
      <p role="alert" className="problem">
        The portal could not start: {errorMessage(error)}
      </p>
    </main>,
  );
}
