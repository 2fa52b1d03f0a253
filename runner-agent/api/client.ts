/**
 * Client of the control plane's runner endpoints:
 *   POST /api/runner/jobs/{id}/events         RunnerEvent → 202 RunnerEventAck | 409 (job no longer runnable)
 *   POST /api/runner/jobs/{id}/upload-target  → 200 UploadTarget (write-only SAS) | 409
 *   POST /api/runner/jobs/{id}/staged-blocks  → 200 StagedBlocks (uncommitted blocks, to resume an upload) | 409
 *   POST /api/runner/jobs/{id}/rehearsal-source → 200 RehearsalSource (read SAS) | 409;  …/rehearsal RehearsalReport
 *
 * Authenticates with an app-only bearer token (client credentials, the `Runner` app role). Retries with
 * exponential backoff and full jitter on 429 (honouring Retry-After), 5xx and network errors; never on another
 * 4xx. A 409 is not an error but an outcome: the job was cancelled or finished elsewhere, stop working on it.
 */
import { SpanKind, inSpan, setSpanAttributes, traceparentField } from '../../shared/telemetry.js';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { ConfidentialClientApplication, type Configuration } from '@azure/msal-node';
import { ProbeTarget, RehearsalSource, RunnerEventAck, type RehearsalReport, RunnerHeartbeatAck, StagedBlocks, UploadTarget, type RunnerEvent, type RunnerHeartbeat } from '../../shared/contracts/runner.js';
import { AppError, errorMessage, type ErrorCode } from '../../shared/errors.js';
import type { Logger } from '../logger.js';
import { backoffDelayMs, type RetryPolicy } from '../../shared/retry.js';
import { abortableSleep } from '../outage.js';

export type { RetryPolicy };

export interface TokenProvider {
  /** A bearer token for the API; `forceRefresh` bypasses any cache (after a 401). */
  getToken(options?: { forceRefresh?: boolean }): Promise<string>;
}

export interface EntraAppCredentials {
  tenantId: string;
  clientId: string;
  authorityHost: string;
  certificatePath?: string;
  clientSecret?: string;
}

/** Reads a PEM holding the private key and the certificate (chain); MSAL needs the SHA-256 thumbprint. */
export function readClientCertificate(path: string): { privateKey: string; thumbprintSha256: string; x5c: string } {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    throw new AppError('config_invalid', `Client certificate ${path} cannot be read: ${errorMessage(error)}`);
  }
  const key = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC )?PRIVATE KEY-----/.exec(pem)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!key || !cert) {
    throw new AppError('config_invalid', `Client certificate ${path} must hold both the private key and the certificate (PEM)`);
  }
  const thumbprintSha256 = new X509Certificate(cert).fingerprint256.replace(/:/g, '');
  return { privateKey: key, thumbprintSha256, x5c: cert };
}

/**
 * Client-credentials tokens from MSAL. MSAL keeps the token in its in-memory cache and only goes back to
 * Entra when it nears expiry.
 */
export function msalTokenProvider(credentials: EntraAppCredentials, scope: string): TokenProvider {
  const authorityHost = credentials.authorityHost.replace(/\/+$/, '');
  const auth: Configuration['auth'] = {
    clientId: credentials.clientId,
    authority: `${authorityHost}/${credentials.tenantId}`,
    // The configured host is trusted as is: no instance discovery call to login.microsoftonline.com, which an
    // on-prem host may not reach and a sovereign cloud or local issuer does not answer.
    knownAuthorities: [new URL(authorityHost).host],
  };
  if (credentials.certificatePath) auth.clientCertificate = readClientCertificate(credentials.certificatePath);
  else auth.clientSecret = credentials.clientSecret;
  const app = new ConfidentialClientApplication({ auth });
  return {
    async getToken({ forceRefresh = false } = {}) {
      const result = await app.acquireTokenByClientCredential({ scopes: [scope], skipCache: forceRefresh });
      if (!result?.accessToken) throw new AppError('unauthenticated', 'Entra returned no access token for the API');
      return result.accessToken;
    },
  };
}


export const defaultRetryPolicy: RetryPolicy = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000 };
/** A Retry-After longer than this is not waited for in one go (the message lock is renewed meanwhile). */
const maxRetryAfterMs = 60_000;

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfterMs(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The API's answer: the value, or "this job is no longer runnable" with the job's status. */
export type ApiOutcome<T> = { kind: 'ok'; value: T } | { kind: 'not_runnable'; status: string; detail: string };

export interface ApiClientOptions {
  baseUrl: string;
  tokens: TokenProvider;
  retry?: RetryPolicy;
  requestTimeoutMs?: number;
  logger?: Logger;
  fetch?: typeof fetch;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

const codeByStatus: Record<number, ErrorCode> = {
  400: 'validation_failed',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
};

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

export class RunnerApiClient {
  private readonly baseUrl: string;
  private readonly retry: RetryPolicy;
  private readonly fetchImpl: typeof fetch;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;

  constructor(private readonly options: ApiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.retry = options.retry ?? defaultRetryPolicy;
    this.fetchImpl = options.fetch ?? fetch;
    this.sleep = options.sleep ?? abortableSleep;
    this.random = options.random ?? Math.random;
  }

  /** Reports one event. Events carry an id, so a retried POST that had in fact arrived is harmless. */
  async postEvent(jobId: string, event: RunnerEvent, options: { signal?: AbortSignal } = {}): Promise<ApiOutcome<RunnerEventAck>> {
    const outcome = await this.call(`/api/runner/jobs/${encodeURIComponent(jobId)}/events`, event, options.signal);
    if (outcome.kind !== 'ok') return outcome;
    // The ack is informative only; an API that answers 202 with another body has still taken the event.
    const ack = RunnerEventAck.safeParse(outcome.value);
    return { kind: 'ok', value: ack.success ? ack.data : { jobId, status: 'Running', duplicate: false } };
  }

  /** A write-only SAS for the job's blob. */
  async uploadTarget(jobId: string, options: { signal?: AbortSignal } = {}): Promise<ApiOutcome<UploadTarget>> {
    const outcome = await this.call(`/api/runner/jobs/${encodeURIComponent(jobId)}/upload-target`, {}, options.signal);
    if (outcome.kind !== 'ok') return outcome;
    const target = UploadTarget.safeParse(outcome.value);
    if (!target.success) throw new AppError('internal', `The API answered upload-target with an unexpected body: ${target.error.message}`);
    return { kind: 'ok', value: target.data };
  }

  /** The uncommitted blocks an interrupted upload left on the job's blob (the control plane lists them). */
  async stagedBlocks(jobId: string, options: { signal?: AbortSignal } = {}): Promise<ApiOutcome<StagedBlocks>> {
    const outcome = await this.call(`/api/runner/jobs/${encodeURIComponent(jobId)}/staged-blocks`, {}, options.signal);
    if (outcome.kind !== 'ok') return outcome;
    const staged = StagedBlocks.safeParse(outcome.value);
    if (!staged.success) throw new AppError('internal', `The API answered staged-blocks with an unexpected body: ${staged.error.message}`);
    return { kind: 'ok', value: staged.data };
  }

  /** A read SAS for an Available backup to rehearse, with the digest and row counts recorded at upload. */
  async rehearsalSource(jobId: string, options: { signal?: AbortSignal } = {}): Promise<ApiOutcome<RehearsalSource>> {
    const outcome = await this.call(`/api/runner/jobs/${encodeURIComponent(jobId)}/rehearsal-source`, {}, options.signal);
    if (outcome.kind !== 'ok') return outcome;
    const source = RehearsalSource.safeParse(outcome.value);
    if (!source.success) throw new AppError('internal', `The API answered rehearsal-source with an unexpected body: ${source.error.message}`);
    return { kind: 'ok', value: source.data };
  }

  /** Reports a rehearsal's outcome; a 409 means the backup is gone, nothing to record. */
  async reportRehearsal(jobId: string, report: RehearsalReport, options: { signal?: AbortSignal } = {}): Promise<ApiOutcome<unknown>> {
    return this.call(`/api/runner/jobs/${encodeURIComponent(jobId)}/rehearsal`, report, options.signal);
  }

  /** A job-less SAS for `check`'s probe blob (write, then delete). */
  async probeTarget(options: { signal?: AbortSignal } = {}): Promise<ProbeTarget> {
    const outcome = await this.call('/api/runner/probe-target', {}, options.signal);
    const target = outcome.kind === 'ok' ? ProbeTarget.safeParse(outcome.value) : undefined;
    if (!target?.success) throw new AppError('internal', 'The API answered probe-target with an unexpected body');
    return target.data;
  }

  /** The host's heartbeat; the answer names the servers the registry binds it to. */
  async heartbeat(heartbeat: RunnerHeartbeat, options: { signal?: AbortSignal } = {}): Promise<RunnerHeartbeatAck> {
    const outcome = await this.call('/api/runner/heartbeat', heartbeat, options.signal);
    if (outcome.kind !== 'ok') throw new AppError('conflict', `The API answered the heartbeat with 409: ${outcome.detail}`);
    const ack = RunnerHeartbeatAck.safeParse(outcome.value);
    if (!ack.success) throw new AppError('internal', `The API answered the heartbeat with an unexpected body: ${ack.error.message}`);
    return ack.data;
  }

  /**
   * For `check`: an authenticated call that needs no job. Asks for the upload target of a job that does not
   * exist; 404 (or 409) proves the token was accepted and the Runner role granted, 401/403 that it was not.
   */
  async probe(): Promise<{ status: number }> {
    try {
      await this.call('/api/runner/jobs/00000000-0000-4000-8000-000000000000/upload-target', {}, undefined);
      return { status: 200 };
    } catch (error) {
      if (error instanceof AppError && (error.code === 'not_found' || error.code === 'validation_failed')) {
        return { status: error.code === 'not_found' ? 404 : 400 };
      }
      throw error;
    }
  }

  /** One span per API call (retries included); the request carries its `traceparent` so the API continues it. */
  private call(path: string, body: unknown, signal: AbortSignal | undefined): Promise<ApiOutcome<unknown>> {
    return inSpan(`runner api POST ${path.replace(/\/[0-9a-f-]{36}/gi, '/{id}')}`, { kind: SpanKind.CLIENT }, async (span) => {
      const outcome = await this.callWithRetries(path, body, signal);
      setSpanAttributes(span, { outcome: outcome.kind });
      return outcome;
    });
  }

  private async callWithRetries(path: string, body: unknown, signal: AbortSignal | undefined): Promise<ApiOutcome<unknown>> {
    const url = `${this.baseUrl}${path}`;
    let refreshedToken = false;
    let lastProblem = '';
    for (let attempt = 0; attempt < this.retry.maxAttempts; attempt += 1) {
      signal?.throwIfAborted();
      let retryAfterMs: number | undefined;
      try {
        const token = await this.options.tokens.getToken();
        const timeout = AbortSignal.timeout(this.options.requestTimeoutMs ?? 30_000);
        const response = await this.fetchImpl(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json', ...traceparentField() },
          body: JSON.stringify(body),
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
        const payload = await readJson(response);
        if (response.ok) return { kind: 'ok', value: payload };
        if (response.status === 409) return notRunnable(payload);
        if (response.status === 401 && !refreshedToken) {
          // A token revoked or rotated before its expiry: one more try with a fresh one.
          refreshedToken = true;
          await this.options.tokens.getToken({ forceRefresh: true });
          attempt -= 1;
          continue;
        }
        lastProblem = `HTTP ${response.status}: ${problemDetail(payload)}`;
        if (!isRetryableStatus(response.status)) {
          throw new AppError(codeByStatus[response.status] ?? 'internal', `POST ${path} was refused (${lastProblem})`, {
            details: { httpStatus: response.status },
          });
        }
        retryAfterMs = parseRetryAfterMs(response.headers.get('retry-after'));
      } catch (error) {
        if (error instanceof AppError || signal?.aborted) throw error;
        lastProblem = errorMessage(error); // network error, timeout, token endpoint down
      }
      if (attempt + 1 >= this.retry.maxAttempts) break;
      const delay = retryAfterMs !== undefined ? Math.min(retryAfterMs, maxRetryAfterMs) : backoffDelayMs(attempt, this.retry, this.random);
      this.options.logger?.warn({ path, attempt: attempt + 1, delayMs: delay, problem: lastProblem }, 'API call failed; retrying');
      await this.sleep(delay, signal);
    }
    throw new AppError('dependency_unavailable', `POST ${path} failed after ${this.retry.maxAttempts} attempts: ${lastProblem}`);
  }
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text.slice(0, 500);
  }
}

function problemDetail(payload: unknown): string {
  if (typeof payload === 'object' && payload !== null) {
    const p = payload as { detail?: unknown; title?: unknown };
    return String(p.detail ?? p.title ?? JSON.stringify(payload).slice(0, 300));
  }
  return String(payload ?? '(empty body)');
}

/** The 409 problem names the job's status in `jobStatus` (the control plane) or in a string `status`. */
function notRunnable(payload: unknown): ApiOutcome<never> {
  const p = (typeof payload === 'object' && payload !== null ? payload : {}) as { status?: unknown; jobStatus?: unknown };
  const status = typeof p.status === 'string' ? p.status : typeof p.jobStatus === 'string' ? p.jobStatus : 'unknown';
  return { kind: 'not_runnable', status, detail: problemDetail(payload) };
}
