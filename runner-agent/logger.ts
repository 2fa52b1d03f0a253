/**
 * Structured JSON logs (pino) to stdout: the service manager (journald, WinSW) keeps them. Each job logs through
 * a child logger carrying its job id. Secrets never reach a log line: callers log no credentials, and the
 * redaction list below catches the usual names should an object with one slip through.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

const redactedPaths = [
  'password',
  'clientSecret',
  'connectionString',
  'token',
  'accessToken',
  'url', // SAS URLs carry a signature
  'authorization',
  '*.password',
  '*.clientSecret',
  '*.connectionString',
  '*.token',
  '*.accessToken',
  '*.url',
  '*.authorization',
];

/** `fd: 2` when stdout carries data (a backup written to stdout). */
export function createLogger(options: { level?: string; fd?: 1 | 2; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      name: 'dbdist-runner',
      level: options.level ?? 'info',
      redact: { paths: redactedPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Synchronous writes: the last lines before an exit (a fatal error, a finished `check`) are not lost.
    options.destination ?? pino.destination({ fd: options.fd ?? 1, sync: true }),
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Strips the query (SAS signature) from a URL before it is logged. */
export function withoutQuery(url: string): string {
  const at = url.indexOf('?');
  return at === -1 ? url : url.slice(0, at);
}
