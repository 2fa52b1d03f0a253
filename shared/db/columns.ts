/**
 * Facts both dialect schemas share, so schema.mssql.ts and schema.pg.ts cannot drift on them:
 * the allowed values of every enum-like column (enforced by CHECK constraints) and column sizes.
 */
import { sql, type SQL } from 'drizzle-orm';
import { actorTypes, auditActions } from '../contracts/audit.js';
import { backupEngines, errorCodeMaxLength, errorMessageMaxLength } from '../contracts/common.js';
import { approvalDecisions, jobStatuses } from '../contracts/jobs.js';

export const jobTriggers = ['user', 'schedule'] as const;
export const restoreResults = ['passed', 'failed'] as const;

/** Column widths. Ids are UUID strings; names follow the zod limits in shared/contracts. */
export const len = {
  id: 36,
  name: 128,
  host: 255,
  description: 1000,
  engine: 16,
  status: 16,
  trigger: 16,
  slot: 40,
  blobPath: 1024,
  oid: 64,
  upn: 320,
  sha256: 64,
  errorCode: errorCodeMaxLength,
  errorMessage: errorMessageMaxLength,
  url: 4000,
  /** A Key Vault key identifier with its version, or a local key's thumbprint id. */
  keyId: 256,
  actorType: 16,
  actorName: 320,
  action: 64,
  target: 200,
  ip: 64,
  userAgent: 512,
  /** `<client id>/<runner id>`: one heartbeat row per runner host of an app registration. */
  runnerKey: 200,
  runnerId: 128,
  version: 64,
  channels: 1000,
  decision: 16,
  reason: 500,
  restoreResult: 16,
  /** `age1…` X25519 recipients are 62 characters; room for a longer recipient type later. */
  ageRecipient: 200,
  fingerprint: 16,
} as const;

/**
 * `<column> IN ('a', 'b', …)` with the values inlined: a CHECK constraint cannot take bind parameters, and
 * drizzle-kit writes the SQL into the migration as it is. The values come from our own constant lists.
 */
export function oneOf(column: { name: string }, values: readonly string[]): SQL {
  const list = values.map((value) => `'${value.replaceAll("'", "''")}'`).join(', ');
  // Unqualified column name: T-SQL and PostgreSQL both accept it in a table's CHECK.
  return sql`${sql.identifier(column.name)} in (${sql.raw(list)})`;
}

export const enumValues = {
  engine: backupEngines,
  status: jobStatuses,
  trigger: jobTriggers,
  actorType: actorTypes,
  action: auditActions,
  decision: approvalDecisions,
  restoreResult: restoreResults,
} as const;
