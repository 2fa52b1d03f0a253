/**
 * Counts what a store sends to PostgreSQL, at the one place every statement passes: the `query` method of each
 * node-postgres client the pool hands out (pool.query, Drizzle's queries and its transactions all go through it).
 * Also remembers each connection's server process (from the connection's BackendKeyData), so the server's CPU for
 * this pool can be read from /proc when the server runs on this machine.
 */
import type pg from 'pg';
import { processCpu } from './proc.js';

export interface SqlCounts {
  /** Statements other than transaction control. */
  statements: number;
  selects: number;
  inserts: number;
  updates: number;
  deletes: number;
  /** BEGIN, COMMIT, ROLLBACK (and savepoints). */
  transactionControl: number;
  /** Rows returned by SELECTs. */
  rowsRead: number;
  /** Rows inserted, updated or deleted. */
  rowsWritten: number;
  /** Rows written per table, by the statement's target table. */
  rowsWrittenByTable: Record<string, number>;
}

export interface SqlCounter {
  snapshot(): SqlCounts;
  /** CPU seconds the server processes of this pool's connections used so far; undefined when unreadable (a remote server). */
  serverCpuSeconds(): number | undefined;
}

const zero = (): SqlCounts => ({ statements: 0, selects: 0, inserts: 0, updates: 0, deletes: 0, transactionControl: 0, rowsRead: 0, rowsWritten: 0, rowsWrittenByTable: {} });

const targetTable = /^\s*(?:insert\s+into|update|delete\s+from)\s+"?([\w.]+)"?/i;

/** Starts counting on `pool`: call before the pool's first query. */
export function countStatements(pool: pg.Pool): SqlCounter {
  const counts = zero();
  const serverPids: number[] = [];
  pool.on('connect', (client) => {
    const pid = (client as unknown as { processID?: number }).processID;
    if (pid) serverPids.push(pid);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    // Drizzle awaits the promise form; pool.query passes a callback.
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string } | undefined)?.text ?? '');
      const callback = args.at(-1);
      if (typeof callback === 'function') {
        args[args.length - 1] = (error: unknown, result: pg.QueryResult | undefined) => {
          record(text, error ? undefined : result);
          return (callback as (...a: unknown[]) => unknown)(error, result);
        };
        return query(...args);
      }
      const result = query(...args);
      if (result instanceof Promise) void result.then((r: pg.QueryResult) => record(text, r), () => record(text, undefined));
      return result;
    };
  });

  function record(text: string, result: pg.QueryResult | undefined): void {
    const command = (result?.command ?? text.trim().split(/\s+/, 1)[0] ?? '').toUpperCase();
    const rows = result ? (result.rowCount ?? result.rows.length) : 0;
    switch (command) {
      case 'BEGIN':
      case 'COMMIT':
      case 'ROLLBACK':
      case 'SAVEPOINT':
      case 'RELEASE':
        counts.transactionControl += 1;
        return;
      case 'SELECT':
        counts.selects += 1;
        counts.rowsRead += rows;
        break;
      case 'INSERT':
      case 'UPDATE':
      case 'DELETE': {
        counts[command === 'INSERT' ? 'inserts' : command === 'UPDATE' ? 'updates' : 'deletes'] += 1;
        counts.rowsWritten += rows;
        const table = targetTable.exec(text)?.[1] ?? '?';
        counts.rowsWrittenByTable[table] = (counts.rowsWrittenByTable[table] ?? 0) + rows;
        break;
      }
    }
    counts.statements += 1;
  }

  return {
    snapshot: () => ({ ...counts, rowsWrittenByTable: { ...counts.rowsWrittenByTable } }),
    serverCpuSeconds() {
      let seconds = 0;
      for (const pid of serverPids) {
        const stat = processCpu(pid);
        if (stat?.command !== 'postgres') return undefined; // gone, or not our server's process: a remote server
        seconds += stat.cpuSeconds;
      }
      return serverPids.length > 0 ? seconds : undefined;
    },
  };
}

/** The difference of two snapshots (what happened between them). */
export function sqlDelta(after: SqlCounts, before: SqlCounts): SqlCounts {
  const tables = new Set([...Object.keys(after.rowsWrittenByTable), ...Object.keys(before.rowsWrittenByTable)]);
  return {
    statements: after.statements - before.statements,
    selects: after.selects - before.selects,
    inserts: after.inserts - before.inserts,
    updates: after.updates - before.updates,
    deletes: after.deletes - before.deletes,
    transactionControl: after.transactionControl - before.transactionControl,
    rowsRead: after.rowsRead - before.rowsRead,
    rowsWritten: after.rowsWritten - before.rowsWritten,
    rowsWrittenByTable: Object.fromEntries(
      [...tables].map((table) => [table, (after.rowsWrittenByTable[table] ?? 0) - (before.rowsWrittenByTable[table] ?? 0)]),
    ),
  };
}
