/**
 * The SQL Server and PostgreSQL schemas must describe the same tables: the repository is written once over both.
 * Read from Drizzle's own table config of each dialect, so a column added to one schema only fails here.
 */
import { getTableConfig as mssqlTableConfig } from 'drizzle-orm/mssql-core';
import { getTableConfig as pgTableConfig } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import * as mssql from '../../../shared/db/schema.mssql.js';
import * as pg from '../../../shared/db/schema.pg.js';

type TableConfig = ReturnType<typeof pgTableConfig> | ReturnType<typeof mssqlTableConfig>;

/** nvarchar(max) and text are both "unbounded"; Drizzle reports max as 2^31-1. */
const unbounded = 2_147_483_647;

/** What must agree across dialects, per table. Kinds are Drizzle's dialect-neutral data types ("string", "object date"…). */
function shape(config: TableConfig) {
  return {
    name: config.name,
    columns: config.columns.map((column) => ({
      name: column.name,
      kind: column.dataType,
      notNull: column.notNull,
      primaryKey: column.primary,
      length: (column as { length?: number }).length === unbounded ? undefined : (column as { length?: number }).length,
      allowedValues: column.enumValues ?? null,
    })),
    indexes: config.indexes
      .map((index) => ({
        name: index.config.name ?? '',
        columns: index.config.columns.map((column) => (column as { name?: string }).name),
        unique: Boolean(index.config.unique),
        partial: index.config.where !== undefined,
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    checks: config.checks.map((check) => check.name).sort(),
    foreignKeys: config.foreignKeys.map((foreignKey) => {
      const reference = foreignKey.reference();
      return { columns: reference.columns.map((c) => c.name), foreignColumns: reference.foreignColumns.map((c) => c.name) };
    }),
  };
}

const tableNames = ['servers', 'databases', 'jobs', 'auditEvents', 'notificationOutbox', 'runnerHeartbeats', 'requesterRecipients'] as const;

describe('schemas of both dialects', () => {
  it('export the same tables', () => {
    const tablesOf = (schema: object) => Object.keys(schema).filter((key) => !key.startsWith('_')).sort();
    expect(tablesOf(mssql)).toEqual(tablesOf(pg));
    expect(tablesOf(pg)).toEqual([...tableNames].sort());
  });

  it.each(tableNames)('define %s with the same columns, nullability, kinds, indexes and constraints', (table) => {
    expect(shape(mssqlTableConfig(mssql[table]))).toEqual(shape(pgTableConfig(pg[table])));
  });

  it('index what the store queries by', () => {
    const indexes = (table: (typeof tableNames)[number]) =>
      Object.fromEntries(shape(pgTableConfig(pg[table])).indexes.map((index) => [index.columns.join(','), index]));
    expect(indexes('jobs')['requester_oid,created_at,id']).toBeDefined();
    expect(indexes('jobs')['status,expires_at']).toBeDefined();
    expect(indexes('jobs')['database_id,schedule_slot']).toMatchObject({ unique: true, partial: true });
    expect(indexes('auditEvents')['at,id']).toBeDefined();
    expect(indexes('auditEvents')['job_id']).toBeDefined();
    expect(indexes('auditEvents')['actor_id']).toBeDefined();
  });
});
