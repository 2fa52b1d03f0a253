/**
 * What the control plane needs from Blob Storage. The implementation (shared/storage/blob-gateway.ts) uses
 * @azure/storage-blob with a TokenCredential: user-delegation SAS only, never an account key.
 */
export interface BlobFacts {
  sizeBytes: number;
  /** Blob metadata as stored (keys lower-case). The runner sets sha256, size, engine, jobid, ... at commit. */
  metadata: Record<string, string>;
  contentType?: string;
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
  /** Properties of a committed blob, or undefined when there is none. */
  getBlobFacts(blobPath: string): Promise<BlobFacts | undefined>;
  /** Deletes the blob and its snapshots if present; true when something was deleted. */
  deleteBlob(blobPath: string): Promise<boolean>;
  /** Readiness: the container is reachable with our identity. */
  ping(): Promise<void>;
}
