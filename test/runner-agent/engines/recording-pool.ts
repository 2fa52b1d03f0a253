/**
 * A stand-in for mssql's pool that plays SQL Server's part for the engine: records each command with its
 * parameters, replays recorded info messages and writes the .bak file when it sees BACKUP (into `workDir`, the
 * directory SQL Server and the runner share). No TDS server runs on these machines (docs: local-stand-ins).
 */
import { writeFileSync } from 'node:fs';
import type { SqlServerSettings } from '../../../runner-agent/config.js';
import {
  databaseLookupStatement,
  identityStatement,
  serverFactsStatement,
  type SqlPool,
  type SqlRequest,
} from '../../../runner-agent/engines/sqlserver.js';

/** Runner settings for the scripted server `sql01`: SQL login, encrypted, RESTORE VERIFYONLY required. */
export const scriptedServerSettings: SqlServerSettings = {
  host: 'sql01',
  auth: { type: 'sql', user: 'runner', password: 'x' },
  encrypt: true,
  trustServerCertificate: false,
  verify: true,
  whenVerifyNotPermitted: 'fail',
  odbcDriver: 'ODBC Driver 18 for SQL Server',
};

/** What the recorded server answers to serverFactsStatement: Developer edition, a login with CREATE ANY DATABASE. */
export const developer = { engine_edition: 3, edition: 'Developer Edition (64-bit)', can_verify: 1 };

export interface RecordedCall {
  command: string;
  inputs: Record<string, unknown>;
}

export interface RecordingPoolOptions {
  infoMessages?: Array<{ message: string; number?: number }>;
  fail?: (command: string) => unknown;
  databases?: string[];
  facts?: Record<string, unknown>;
  /** What BACKUP writes (default 1,000 bytes of 7s). */
  backupBytes?: Buffer;
}

/** Pools whose BACKUP writes into `workDir`. */
export function recordingPoolIn(workDir: string) {
  return function recordingPool(options: RecordingPoolOptions = {}) {
    const calls: RecordedCall[] = [];
    const pool: SqlPool = {
      request(): SqlRequest {
        const inputs: Record<string, unknown> = {};
        const listeners: Array<(info: { message: string; number?: number }) => void> = [];
        const request: SqlRequest = {
          input(name, _type, value) {
            inputs[name] = value;
            return request;
          },
          on(_event, listener) {
            listeners.push(listener);
            return request;
          },
          async query(command) {
            calls.push({ command, inputs: { ...inputs } });
            const failure = options.fail?.(command);
            if (failure) throw failure;
            if (command === databaseLookupStatement) {
              const found = (options.databases ?? []).includes(String(inputs.name));
              return { recordset: found ? [{ name: inputs.name, state_desc: 'ONLINE' }] : [] };
            }
            if (command === serverFactsStatement) return { recordset: [options.facts ?? developer] };
            if (command === identityStatement) return { recordset: [{ product_version: '16.0.1000.6', login_name: 'DOM\\runner' }] };
            if (command.startsWith('BACKUP DATABASE')) {
              for (const info of options.infoMessages ?? []) listeners.forEach((l) => l(info));
              // SQL Server writes the file; a path outside the work dir (a remote server's share) is not ours to write.
              if (String(inputs.path).startsWith(workDir)) writeFileSync(String(inputs.path), options.backupBytes ?? Buffer.alloc(1000, 7));
            }
            return { recordset: [] };
          },
          cancel() {},
        };
        return request;
      },
      async close() {},
    };
    return { pool, calls };
  };
}
