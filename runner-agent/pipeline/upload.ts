/**
 * The upload pipeline: ONE streaming pass from the engine's output to a block blob.
 *
 *   engine stream → [compress: gzip | zstd] → [encrypt: AES-256-GCM chunks] → digest (SHA-256 + bytes)
 *     → block stager (stageBlock, bounded parallelism) → commitBlockList
 *
 * No MD5, neither Content-MD5 nor per block: TLS protects every request in transit, and the control plane
 * re-hashes the stored blob and checks it against the SHA-256 reported here, so an MD5 would buy nothing more
 * than its 1.6 CPU s per GiB (bench/RESULTS.md). A block is sent as the pieces it was cut from, never copied
 * into one buffer.
 *
 * Memory is bounded whatever the size: at most `parallelism` blocks are in flight plus the one being filled,
 * and the stager applies backpressure (its write callback waits for a free slot).
 *
 * Nothing is committed unless the whole stream went through AND the engine reported success: staged blocks
 * that are never committed are invisible and the service discards them (after a week). Block ids carry a random
 * per-attempt prefix, so a retried attempt never mixes with an earlier one; its commit replaces the blob whole.
 *
 * Resumable uploads (a finished local backup file, unencrypted: `resume`) name each block by its index and its
 * own SHA-256 instead, so an id binds the block's bytes. A later attempt reads the file again through the same
 * stages, gets the blob's uncommitted blocks (Get Block List, which the control plane runs for it: the SAS has
 * no read) and skips every block whose id and size are already there: only blocks that never reached the
 * service are sent again. Whatever was reused, the whole-file digest is computed over every byte of this pass,
 * and the control plane re-hashes the committed blob.
 *
 * Block size: 8 MiB by default. A blob holds at most 50,000 blocks, so for a known source size the block grows
 * to fit (size / 50,000, rounded up to a MiB); for an unknown size (pg_dump's stdout) 8 MiB blocks allow
 * 390 GiB of stored bytes — pass `blockBytes` for more.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlockBlobClient } from '@azure/storage-blob';
import type { Compression } from '../../shared/contracts/common.js';
import type { UploadTarget } from '../../shared/contracts/runner.js';
import { errorMessage } from '../../shared/errors.js';
import { createCompressStream } from './compression.js';
import { createAgeEncryptStream } from './age.js';
import { JobFailure } from '../errors.js';
import { waitThroughOutage, type OutagePolicy } from '../outage.js';

const MiB = 1024 * 1024;
export const DEFAULT_BLOCK_BYTES = 8 * MiB;
export const MAX_BLOCKS = 50_000;
/** Refresh the write SAS when it has less than this left, before staging the next block. */
const DEFAULT_REFRESH_MARGIN_MS = 5 * 60 * 1000;

/** Returns a write SAS for the job's blob; called again (with the reason) for a fresh one. */
export type UploadTargetProvider = (reason: 'initial' | 'expiring' | 'rejected') => Promise<UploadTarget>;

export interface StoredFacts {
  sizeBytes: number;
  sha256: string;
  compression: Compression;
  encrypted: boolean;
}

export interface UploadResult extends StoredFacts {
  blobPath: string;
  blockCount: number;
  /** Set for resumable uploads. */
  resume?: ResumeFacts;
}

export interface UploadOptions {
  source: Readable;
  /**
   * Settles when the engine has finished; a rejection means failure and nothing is committed. Engines also fail
   * their stream with the same error, so a failure mid-stream stops the pipeline at once.
   */
  sourceDone?: Promise<unknown>;
  /** Bytes the source will produce, when known (a .bak file): sizes the blocks. */
  sourceSizeHint?: number;
  compression: Compression;
  /** age recipients (age1…): the copy is encrypted to them when given. */
  ageRecipients?: readonly string[];
  getTarget: UploadTargetProvider;
  /** Facts stored as blob metadata next to sha256/size/compression/encrypted; values are URI-encoded. */
  metadata: { engine: string; jobid: string; server: string; database: string };
  blockBytes?: number;
  /** Blocks staged at once. */
  parallelism?: number;
  signal?: AbortSignal;
  /** Called after each staged block: bytes read from the source and stored so far. */
  onProgress?: (progress: { sourceBytes: number; storedBytes: number }) => void;
  refreshMarginMs?: number;
  /**
   * Last word before the commit, with the stored facts: throwing here (the job was cancelled meanwhile) leaves
   * the blocks uncommitted, so no blob appears for a job that no longer wants it.
   */
  beforeCommit?: (facts: StoredFacts) => Promise<void>;
  /**
   * While Blob Storage is unreachable (after the SDK's own retries), keep the block in memory and try again for
   * up to `boundMs` instead of failing the attempt. Without it a transient storage error fails at once.
   */
  outage?: OutagePolicy;
  /** Builds the client for a SAS URL; tests inject a faulty one. */
  clientFor?: (sasUrl: string) => BlockBlobClient;
  now?: () => number;
  /**
   * The source is a finished local file read from its start: name blocks by content and, with `listStaged`,
   * skip blocks an earlier attempt already staged (the blob's uncommitted blocks, from Get Block List).
   */
  resume?: { listStaged?: () => Promise<ReadonlyArray<{ id: string; sizeBytes: number }>> };
}

/** What a resumable upload reused and what it actually sent. */
export interface ResumeFacts {
  /** Uncommitted blocks found on the blob before this pass (any attempt's). */
  stagedBefore: number;
  reusedBlocks: number;
  reusedBytes: number;
  sentBytes: number;
}

/** Pass-through that hashes and counts the bytes that will be stored. */
class DigestStream extends Transform {
  readonly sha256: Hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.sha256.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** Pass-through that counts bytes (the engine's output, for progress). */
function countingStream(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
}

/** The optional compression and encryption stages, in order. */
export function transformStages(compression: Compression, ageRecipients?: readonly string[]): Array<NodeJS.ReadWriteStream> {
  const stages: NodeJS.ReadWriteStream[] = [];
  const compress = createCompressStream(compression);
  if (compress) stages.push(compress);
  if (ageRecipients) stages.push(createAgeEncryptStream(ageRecipients));
  return stages;
}

/** Block size that keeps a blob of `sizeHint` source bytes under 50,000 blocks (with room for overhead). */
export function chooseBlockBytes(sizeHint: number | undefined, requested = DEFAULT_BLOCK_BYTES): number {
  if (sizeHint === undefined) return requested;
  // Compression can grow incompressible data slightly and encryption adds 16 bytes per 4 MiB: allow 2% + 1 MiB.
  const worstCase = sizeHint * 1.02 + MiB;
  const needed = worstCase / MAX_BLOCKS;
  return needed <= requested ? requested : Math.ceil(needed / MiB) * MiB;
}

function contentTypeFor(compression: Compression, encrypted: boolean): string {
  if (encrypted) return 'application/octet-stream';
  if (compression === 'gzip') return 'application/gzip';
  if (compression === 'zstd') return 'application/zstd';
  return 'application/octet-stream';
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown })?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

function isAuthRejection(error: unknown): boolean {
  return statusOf(error) === 403;
}

/** Storage errors that survived the SDK's own retries: transient when the service or network was at fault. */
function blobFailure(error: unknown, what: string): JobFailure {
  const status = statusOf(error);
  const transient = status === undefined || status === 408 || status === 429 || status >= 500;
  return new JobFailure(status === 403 ? 'blob_forbidden' : 'blob_upload_failed', `${what} failed: ${errorMessage(error)}`, {
    transient,
    cause: error,
  });
}

/** Holds the current write SAS and its client; refreshes it when near expiry or when the service rejects it. */
class TargetHolder {
  private current: { target: UploadTarget; client: BlockBlobClient } | undefined;
  private refreshing: Promise<BlockBlobClient> | undefined;

  constructor(
    private readonly getTarget: UploadTargetProvider,
    private readonly clientFor: (url: string) => BlockBlobClient,
    private readonly refreshMarginMs: number,
    private readonly now: () => number,
  ) {}

  get blobPath(): string {
    return this.current!.target.blobPath;
  }

  async client(): Promise<BlockBlobClient> {
    if (!this.current) return this.refresh('initial');
    const remaining = Date.parse(this.current.target.expiresAt) - this.now();
    return remaining < this.refreshMarginMs ? this.refresh('expiring') : this.current.client;
  }

  /** Single-flight: blocks staged in parallel share one refresh. */
  refresh(reason: 'initial' | 'expiring' | 'rejected'): Promise<BlockBlobClient> {
    this.refreshing ??= (async () => {
      try {
        const target = await this.getTarget(reason);
        if (this.current && target.blobPath !== this.current.target.blobPath) {
          throw new JobFailure('upload_target_changed', `The refreshed upload target is for ${target.blobPath}, not ${this.current.target.blobPath}`);
        }
        this.current = { target, client: this.clientFor(target.url) };
        return this.current.client;
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** Runs `operation` with the current client; once more with a fresh SAS if the service answers 403. */
  async withClient<T>(operation: (client: BlockBlobClient) => Promise<T>, what: string): Promise<T> {
    const client = await this.client();
    try {
      return await operation(client);
    } catch (error) {
      if (!isAuthRejection(error)) throw blobFailure(error, what);
    }
    try {
      return await operation(await this.refresh('rejected'));
    } catch (error) {
      throw blobFailure(error, what);
    }
  }
}

/** Every block id of one blob must have the same length (a service rule): 16 hex characters, dash, 6-digit index. */
function attemptBlockId(attemptPrefix: string, index: number): string {
  return Buffer.from(`${attemptPrefix}-${String(index).padStart(6, '0')}`).toString('base64');
}

/**
 * A content id: 6-digit index, dash, the first 64 bits of the block's SHA-256 in hex; as long as an attempt id, so
 * both kinds can meet on one blob. Costs one more SHA-256 pass over the bytes, so only resumable uploads use it. A false match needs the same index, size and 64-bit digest prefix from another
 * attempt of the same job, and even then the control plane's re-hash of the committed blob would catch it.
 */
export function contentBlockId(index: number, pieces: readonly Buffer[]): string {
  const hash = createHash('sha256');
  for (const piece of pieces) hash.update(piece);
  return Buffer.from(`${String(index).padStart(6, '0')}-${hash.digest('hex').slice(0, 16)}`).toString('base64');
}

/**
 * Writable end of the pipeline: cuts the stream into blocks and stages them, at most `parallelism` at once.
 */
class BlockStager extends Writable {
  readonly blockIds: string[] = [];
  private readonly attemptPrefix = randomBytes(8).toString('hex');
  reusedBlocks = 0;
  reusedBytes = 0;
  sentBytes = 0;
  private readonly filling: Buffer[] = [];
  private fillingBytes = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private readonly aborter = new AbortController();
  storedBytes = 0;

  constructor(
    private readonly targets: TargetHolder,
    private readonly blockBytes: number,
    private readonly parallelism: number,
    private readonly onStaged: (storedBytes: number) => void,
    private readonly outage: OutagePolicy,
    /** Content ids, and those of them already staged (id → size); undefined: attempt ids. */
    private readonly contentIds?: { staged: ReadonlyMap<string, number> },
  ) {
    super({ highWaterMark: 1 * MiB });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.accept(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.flushAll().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Stop requests still running; the caller waits for them through `settled()`.
    this.aborter.abort();
    callback(error);
  }

  /** Resolves once no stageBlock request is running any more. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  private async accept(chunk: Buffer): Promise<void> {
    let rest = chunk;
    while (rest.length > 0) {
      const room = this.blockBytes - this.fillingBytes;
      const piece = rest.length <= room ? rest : rest.subarray(0, room);
      this.filling.push(piece);
      this.fillingBytes += piece.length;
      rest = rest.subarray(piece.length);
      if (this.fillingBytes === this.blockBytes) await this.stageFilled();
    }
  }

  private async flushAll(): Promise<void> {
    if (this.fillingBytes > 0) await this.stageFilled();
    await this.settled();
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private async stageFilled(): Promise<void> {
    while (this.inFlight.size >= this.parallelism) await Promise.race(this.inFlight);
    this.throwIfFailed();
    if (this.blockIds.length >= MAX_BLOCKS) {
      throw new JobFailure('backup_too_large', `More than ${MAX_BLOCKS} blocks of ${this.blockBytes} bytes: raise the block size`);
    }
    const pieces = this.filling.splice(0);
    const blockLength = this.fillingBytes;
    this.fillingBytes = 0;
    // One piece goes as is; several go as a stream over them (called again on a retry), never concatenated.
    const body = pieces.length === 1 ? pieces[0]! : () => Readable.from(pieces, { objectMode: false });
    const index = this.blockIds.length;
    const blockId = this.contentIds ? contentBlockId(index, pieces) : attemptBlockId(this.attemptPrefix, index);
    this.blockIds.push(blockId);
    if (this.contentIds?.staged.get(blockId) === blockLength) {
      // An earlier attempt staged exactly these bytes under this id: nothing to send.
      this.reusedBlocks += 1;
      this.reusedBytes += blockLength;
      this.storedBytes += blockLength;
      this.onStaged(this.storedBytes);
      return;
    }
    const what = `Staging block ${this.blockIds.length}`;
    const staging = waitThroughOutage(
      'Blob Storage',
      () => this.targets.withClient((client) => client.stageBlock(blockId, body, blockLength, { abortSignal: this.aborter.signal }), what),
      this.outage,
      this.aborter.signal,
    ).then(
        () => {
          this.storedBytes += blockLength;
          this.sentBytes += blockLength;
          this.onStaged(this.storedBytes);
        },
        (error: unknown) => {
          this.failure ??= error;
        },
      )
      .finally(() => this.inFlight.delete(staging));
    this.inFlight.add(staging);
  }
}

/**
 * Streams `source` through the stages into the job's blob and commits it. Throws (and commits nothing) when the
 * source, a stage, the engine or the storage service fails.
 */
export async function uploadBackup(options: UploadOptions): Promise<UploadResult> {
  const {
    source,
    compression,
    ageRecipients,
    parallelism = 4,
    signal,
    now = Date.now,
    clientFor = (url: string) => new BlockBlobClient(url),
  } = options;
  // Observe the engine's outcome from the start so an early failure is never an unhandled rejection.
  const sourceDone = options.sourceDone ? options.sourceDone.then(() => undefined, (error: unknown) => error) : Promise.resolve(undefined);
  const targets = new TargetHolder(options.getTarget, clientFor, options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS, now);
  const blockBytes = chooseBlockBytes(options.sourceSizeHint, options.blockBytes);
  let sourceBytes = 0;
  const digest = new DigestStream();
  const outage = options.outage ?? { boundMs: 0 };

  let staged: Map<string, number> | undefined;
  try {
    await targets.client(); // fail fast (before reading anything) when no upload target can be had
    const listStaged = options.resume?.listStaged;
    if (listStaged) staged = new Map((await listStaged()).map((block) => [block.id, block.sizeBytes]));
  } catch (error) {
    source.destroy(); // an engine writing into a pipe nobody reads would wait for ever
    throw error;
  }
  const stager = new BlockStager(
    targets,
    blockBytes,
    parallelism,
    (storedBytes) => options.onProgress?.({ sourceBytes, storedBytes }),
    outage,
    options.resume ? { staged: staged ?? new Map() } : undefined,
  );
  try {
    await pipeline(
      [source, countingStream((n) => (sourceBytes += n)), ...transformStages(compression, ageRecipients), digest, stager],
      signal ? { signal } : {},
    );
  } catch (error) {
    // No request may outlive the attempt: wait for the ones the teardown aborted.
    await stager.settled();
    throw error;
  }
  const engineError = await sourceDone;
  if (engineError !== undefined) throw engineError;
  signal?.throwIfAborted();

  const facts: StoredFacts = {
    sizeBytes: digest.bytes,
    sha256: digest.sha256.digest('hex'),
    compression,
    encrypted: ageRecipients !== undefined,
  };
  await options.beforeCommit?.(facts);
  signal?.throwIfAborted();
  const metadata: Record<string, string> = {
    sha256: facts.sha256,
    size: String(facts.sizeBytes),
    engine: options.metadata.engine,
    jobid: options.metadata.jobid,
    server: encodeURIComponent(options.metadata.server),
    database: encodeURIComponent(options.metadata.database),
    compression,
    encrypted: String(facts.encrypted),
  };
  await waitThroughOutage(
    'Blob Storage',
    () =>
      targets.withClient(
        (client) =>
          client.commitBlockList(stager.blockIds, {
            metadata,
            blobHTTPHeaders: { blobContentType: contentTypeFor(compression, facts.encrypted) },
            ...(signal ? { abortSignal: signal } : {}),
          }),
        'Committing the block list',
      ),
    outage,
    signal,
  );
  return {
    ...facts,
    blobPath: targets.blobPath,
    blockCount: stager.blockIds.length,
    ...(options.resume
      ? {
          resume: {
            stagedBefore: staged?.size ?? 0,
            reusedBlocks: stager.reusedBlocks,
            reusedBytes: stager.reusedBytes,
            sentBytes: stager.sentBytes,
          },
        }
      : {}),
  };
}

/**
 * The same stages into a local file or stdout, for the operator's manual `backup` command. Returns the facts of
 * the bytes written.
 */
export async function writeBackup(options: {
  source: Readable;
  sourceDone?: Promise<unknown>;
  compression: Compression;
  ageRecipients?: readonly string[];
  destination: NodeJS.WritableStream;
  signal?: AbortSignal;
}): Promise<StoredFacts> {
  const sourceDone = options.sourceDone ? options.sourceDone.then(() => undefined, (error: unknown) => error) : Promise.resolve(undefined);
  const digest = new DigestStream();
  await pipeline(
    [options.source, ...transformStages(options.compression, options.ageRecipients), digest, options.destination],
    options.signal ? { signal: options.signal } : {},
  );
  const engineError = await sourceDone;
  if (engineError !== undefined) throw engineError;
  return {
    sizeBytes: digest.bytes,
    sha256: digest.sha256.digest('hex'),
    compression: options.compression,
    encrypted: options.ageRecipients !== undefined,
  };
}
