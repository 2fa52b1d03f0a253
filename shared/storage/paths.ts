import type { BackupEngine, Compression } from '../contracts/common.js';
import type { EncryptionFormat } from '../contracts/encryption.js';

const engineExtension: Record<BackupEngine, string> = { sqlserver: 'bak', postgres: 'dump' };
const compressionExtension: Record<Compression, string> = { none: '', gzip: '.gz', zstd: '.zst' };
/** `.age` as the age tools name their files; `.enc` for the retired runner-key format. */
const encryptionExtension: Record<EncryptionFormat, string> = { none: '', age: '.age', dbde: '.enc' };

export interface BackupNaming {
  jobId: string;
  serverId: string;
  databaseId: string;
  engine: BackupEngine;
  compression: Compression;
  encryption: EncryptionFormat;
}

function extension(n: Pick<BackupNaming, 'engine' | 'compression' | 'encryption'>): string {
  return `${engineExtension[n.engine]}${compressionExtension[n.compression]}${encryptionExtension[n.encryption]}`;
}

/**
 * Blob path of a job's backup, inside the backup container (so no `backups/` prefix: the URL would read
 * `/backups/backups/`). Only ids in it: database names are user data and stay out of URLs. Jobs keep the path
 * they were created with, so older jobs' `backups/…` paths still resolve.
 */
export function backupBlobPath(n: BackupNaming): string {
  return `${n.serverId}/${n.databaseId}/${n.jobId}.${extension(n)}`;
}

/** Where a runner's `check` writes its probe blob: outside `backups/`, one fresh name per probe. */
export function probeBlobPath(clientId: string, probeId: string): string {
  return `probes/${clientId.replace(/[^A-Za-z0-9-]/g, '_')}/${probeId}.probe`;
}

/** File name a browser saves the download as, e.g. `Sales-20261123-0905.bak.gz`. */
export function downloadFileName(
  databaseName: string,
  createdAt: Date,
  n: Pick<BackupNaming, 'engine' | 'compression' | 'encryption'>,
): string {
  const safeName = databaseName.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 80) || 'database';
  const stamp = createdAt.toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-');
  return `${safeName}-${stamp}.${extension(n)}`;
}

/** Where a backup's sidecars live: beside it, named after it. */
export function sidecarPaths(blobPath: string): { sha256: string; manifest: string } {
  return { sha256: `${blobPath}.sha256`, manifest: `${blobPath}.manifest.json` };
}

/** File names of the sidecars of a download called `fileName`. */
export function sidecarFileNames(fileName: string): { sha256: string; manifest: string } {
  return { sha256: `${fileName}.sha256`, manifest: `${fileName}.manifest.json` };
}
