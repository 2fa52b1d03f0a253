import { z } from 'zod';

/** Any case accepted, lower case kept: ids are stored and compared in lower case. */
export const uuid = z.uuid().toLowerCase();
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256 digest');
export const isoDateTime = z.iso.datetime({ offset: true });

/**
 * A job's error, as runners report it and the store keeps it: one length for the contract, the column and the
 * store's truncation (a longer value would make the statement recording the failure fail itself).
 */
export const errorMessageMaxLength = 4000;
export const errorCodeMaxLength = 64;

export const backupEngines = ['sqlserver', 'postgres'] as const;
export const BackupEngine = z.enum(backupEngines);
export type BackupEngine = z.infer<typeof BackupEngine>;

export const compressions = ['none', 'gzip', 'zstd'] as const;
export const Compression = z.enum(compressions);
export type Compression = z.infer<typeof Compression>;

/** Opaque keyset cursor; see shared/db/cursor.ts. */
export const Cursor = z.string().regex(/^[A-Za-z0-9_-]{1,512}$/, 'must be a cursor returned by a previous page');

export const PageLimit = z.coerce.number().int().min(1).max(200).default(50);

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` to get the next page; absent on the last page. */
  nextCursor?: string;
}
