/**
 * What the control plane needs from Blob Storage. The implementation (shared/storage/blob-gateway.ts) uses
 * @azure/storage-blob with a TokenCredential: user-delegation SAS only, never an account key.
 */
import { sidecarPaths } from './paths.js';

export interface BlobFacts {
  sizeBytes: number;
  /** Changes whenever the blob is rewritten: ranged reads pin it so a resumed hash reads one version. */
  etag: string;
  /** Blob metadata as stored (keys lower-case). The runner sets sha256, size, engine, jobid, ... at commit. */
  metadata: Record<string, string>;
  contentType?: string;
}

/** One uncommitted block: its id as the uploader chose it (base64) and its size. */
export interface StagedBlock {
  id: string;
  sizeBytes: number;
}

export interface SasLink {
  url: string;
  expiresAt: Date;
}

/** What makes one download link traceable and, optionally, usable by one person only. */
export interface ReadSasIdentity {
  /** Unique per link; signed into the SAS as `scid`, so the storage logs carry it (docs/audit-downloads.md). */
  correlationId: string;
  /** Entra object id of the only user whose token may use the link (SAS `sduoid`, service version 2025-07-05). */
  delegatedUserObjectId?: string;
}

export interface BlobGateway {
  /** Read-only, HTTPS-only SAS for one blob, with a content-disposition naming the download `fileName`. */
  issueReadSas(blobPath: string, options: { expiresAt: Date; fileName: string; startsAt?: Date } & ReadSasIdentity): Promise<SasLink>;
  /**
   * Create+write SAS for one blob (no read, no list), HTTPS only. `allowDelete` adds delete, for the runner's
   * job-less probe blob only (it writes one and deletes it again).
   */
  issueWriteSas(blobPath: string, options: { expiresAt: Date; startsAt?: Date; allowDelete?: boolean }): Promise<SasLink>;
  /**
   * The blob's uncommitted blocks (Get Block List), in staging order: what an interrupted upload left staged. The
   * control plane answers this for the runner, whose SAS stays create+write (Get Block List needs read).
   */
  listStagedBlocks(blobPath: string): Promise<StagedBlock[]>;
  /** Properties of a committed blob, or undefined when there is none. */
  getBlobFacts(blobPath: string): Promise<BlobFacts | undefined>;
  /**
   * A streamed read of `count` bytes from `offset` (bounded memory: the caller consumes it chunk by chunk). With
   * `etag`, the read fails with `blob_changed` if the blob is no longer that version; undefined when there is no blob.
   */
  readRange(blobPath: string, range: { offset: number; count: number; etag?: string }): Promise<NodeJS.ReadableStream | undefined>;
  /** Writes (replaces) a small blob in one request: the control plane's sidecars beside a backup. */
  writeBlob(blobPath: string, content: Uint8Array, options: { contentType: string }): Promise<void>;
  /** Deletes the blob and its snapshots if present; true when something was deleted. */
  deleteBlob(blobPath: string): Promise<boolean>;
  /** Readiness: the container is reachable with our identity. */
  ping(): Promise<void>;
}

/** Deletes a backup and its sidecars (`.sha256`, `.manifest.json`); true when the backup itself was deleted. */
export async function deleteBackupFiles(blobs: Pick<BlobGateway, 'deleteBlob'>, blobPath: string): Promise<boolean> {
  const sidecars = sidecarPaths(blobPath);
  const [deleted] = await Promise.all([blobs.deleteBlob(blobPath), blobs.deleteBlob(sidecars.sha256), blobs.deleteBlob(sidecars.manifest)]);
  return deleted;
}
