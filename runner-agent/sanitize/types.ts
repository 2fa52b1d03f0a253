/**
 * What a scratch target offers the sanitize and restore stages: a server where the runner may create, fill,
 * mask, count, back up and drop databases whose names start with its prefix. One driver per engine.
 */
import type { Readable } from 'node:stream';
import type { BackupEngine } from '../../shared/contracts/common.js';
import type { EngineBackup } from '../engines/types.js';
import type { MaskingPlan } from './plan.js';

/** A column as the scratch database's catalog describes it. */
export interface CatalogColumn {
  schema: string;
  table: string;
  column: string;
  /** Engine type name, lower case (`text`, `character varying`, `nvarchar`, `int`…). */
  dataType: string;
  /** Character length limit, when the type has one (-1 / null: unlimited). */
  maxLength: number | null;
}

/** Per-copy secrets of the hash strategies: HMAC-SHA256 pads for a random key that never leaves the process. */
export interface MaskingKey {
  ipad: Buffer;
  opad: Buffer;
}

export interface ScratchDriver {
  readonly engine: BackupEngine;
  /** The scratch names this driver creates start with it. */
  readonly prefix: string;
  /** Copies the source database (as a job names it) into a new scratch database. */
  restoreFromSource(sourceDatabase: string, scratch: string, signal: AbortSignal): Promise<void>;
  /** Restores a backup's plain bytes (decrypted, decompressed) into a new scratch database. */
  restoreFromBackup(backup: Readable, scratch: string, signal: AbortSignal): Promise<void>;
  columns(scratch: string): Promise<CatalogColumn[]>;
  /** Applies the plan and the custom SQL in one transaction: all of it, or nothing. */
  applyMasking(scratch: string, plan: MaskingPlan, key: MaskingKey, signal: AbortSignal): Promise<void>;
  /** Distinct non-null values of a column, as text. */
  distinctValues(scratch: string, column: CatalogColumn): Promise<string[]>;
  /** Rows per table, keyed `schema.table`. */
  countRows(scratch: string): Promise<Record<string, number>>;
  backup(scratch: string, options: { signal: AbortSignal; attemptId: string; jobId: string }): Promise<EngineBackup>;
  /** Idempotent: a database that is gone already is fine. */
  drop(scratch: string): Promise<void>;
  /** PostgreSQL's shortcut when the rules only exclude table data: the source's catalog and a dump without those rows. */
  sourceColumns?(sourceDatabase: string): Promise<CatalogColumn[]>;
  backupSourceExcludingData?(
    sourceDatabase: string,
    tables: Array<{ schema: string; table: string }>,
    options: { signal: AbortSignal; attemptId: string; jobId: string },
  ): Promise<EngineBackup>;
  /** Drops every database with the prefix (leftovers of a crashed run); returns their names. */
  dropLeftovers(): Promise<string[]>;
}
