/**
 * BlobGateway on @azure/storage-blob with an injected TokenCredential (a managed identity in Azure, a test
 * credential against Azurite). Every SAS is a user-delegation SAS: no account key exists anywhere in dbdist.
 */
import type { TokenCredential } from '@azure/identity';
import {
  BlobSASPermissions,
  BlobServiceClient,
  generateBlobSASQueryParameters,
  SASProtocol,
  type ContainerClient,
  type StoragePipelineOptions,
  type UserDelegationKey,
} from '@azure/storage-blob';
import { AppError } from '../errors.js';
import type { BlobFacts, BlobGateway, SasLink, StagedBlock } from './gateway.js';

export interface BlobGatewayOptions {
  /** Account blob endpoint, e.g. `https://stbackups.blob.core.windows.net` (path-style for emulators). */
  blobEndpoint: string;
  container: string;
  credential: TokenCredential;
  /** Retry policy of the SDK pipeline; the SDK default retries a few times with back-off. */
  retryOptions?: StoragePipelineOptions['retryOptions'];
  /**
   * Sign each link's correlation id into the SAS (`scid`). Default true. Azurite 3.37 leaves `scid` out of its
   * signature check and so refuses such a SAS: the local stack turns it off (test/dev/azurite.test.ts shows why).
   */
  signCorrelationIds?: boolean;
}

/** Azure refuses user-delegation keys that live longer than 7 days, and a SAS cannot outlive its key. */
export const maxDelegationKeyLifetimeMs = 7 * 24 * 60 * 60 * 1000;
/** Requested key lifetime when the SAS needs less: long enough to cover a day-long link issued a day from now. */
const preferredDelegationKeyLifetimeMs = 2 * 24 * 60 * 60 * 1000;
/** Keys start a little in the past so that a service clock slightly behind ours accepts them at once. */
const clockSkewMs = 5 * 60 * 1000;
/** Latest expiry a key (and so a SAS) may have: its whole window, skew included, stays within 7 days. */
const maxExpiryFromNowMs = maxDelegationKeyLifetimeMs - clockSkewMs;
/** Forces the browser to save rather than render, whatever the bytes look like. */
const downloadContentType = 'application/octet-stream';

/** Status codes after which a retry can succeed: the dependency is busy or down, not refusing us. */
const unavailableStatusCodes = new Set([408, 429, 500, 502, 503, 504]);

export function createBlobGateway(options: BlobGatewayOptions): BlobGateway {
  const service = new BlobServiceClient(options.blobEndpoint, options.credential, {
    retryOptions: options.retryOptions,
  });
  const accountName = service.accountName;
  if (!accountName) {
    // generateBlobSASQueryParameters signs over the account name; custom domains do not reveal it.
    throw new AppError('config_invalid', `Cannot tell the storage account name from blob endpoint ${options.blobEndpoint}`);
  }
  const container = service.getContainerClient(options.container);
  const delegationKeys = new DelegationKeyCache(service);

  async function issueSas(
    blobPath: string,
    permissions: string,
    sas: {
      expiresAt: Date;
      startsAt?: Date;
      contentDisposition?: string;
      contentType?: string;
      correlationId?: string;
      delegatedUserObjectId?: string;
    },
  ): Promise<SasLink> {
    assertBlobPath(blobPath);
    assertSasWindow(sas.startsAt, sas.expiresAt);
    const key = await unavailableOnOutage(() => delegationKeys.covering(sas.expiresAt), 'get a user delegation key');
    const query = generateBlobSASQueryParameters(
      {
        containerName: options.container,
        blobName: blobPath,
        permissions: BlobSASPermissions.parse(permissions),
        startsOn: sas.startsAt,
        expiresOn: sas.expiresAt,
        protocol: SASProtocol.Https,
        contentDisposition: sas.contentDisposition,
        contentType: sas.contentType,
        ...(sas.correlationId && options.signCorrelationIds !== false ? { correlationId: sas.correlationId } : {}),
        ...(sas.delegatedUserObjectId ? { delegatedUserObjectId: sas.delegatedUserObjectId } : {}),
      },
      key,
      accountName,
    );
    return { url: `${container.getBlobClient(blobPath).url}?${query.toString()}`, expiresAt: sas.expiresAt };
  }

  return {
    issueReadSas(blobPath, { expiresAt, startsAt, fileName, correlationId, delegatedUserObjectId }) {
      return issueSas(blobPath, 'r', {
        expiresAt,
        startsAt,
        correlationId,
        delegatedUserObjectId,
        contentDisposition: attachmentContentDisposition(fileName),
        contentType: downloadContentType,
      });
    },

    issueWriteSas(blobPath, { expiresAt, startsAt, allowDelete }) {
      // Create + write: enough to stage blocks and commit the list; no read, list or tags (delete only for a probe).
      return issueSas(blobPath, allowDelete ? 'cwd' : 'cw', { expiresAt, startsAt });
    },

    async listStagedBlocks(blobPath): Promise<StagedBlock[]> {
      assertBlobPath(blobPath);
      try {
        const list = await unavailableOnOutage(
          () => container.getBlockBlobClient(blobPath).getBlockList('uncommitted'),
          `list the staged blocks of blob ${blobPath}`,
        );
        return (list.uncommittedBlocks ?? []).map((block) => ({ id: block.name, sizeBytes: block.size }));
      } catch (error) {
        if (statusCodeOf(error) === 404) return []; // no blob and no staged block
        throw error;
      }
    },

    async getBlobFacts(blobPath): Promise<BlobFacts | undefined> {
      assertBlobPath(blobPath);
      try {
        const properties = await unavailableOnOutage(
          () => container.getBlobClient(blobPath).getProperties(),
          `read properties of blob ${blobPath}`,
        );
        return {
          sizeBytes: properties.contentLength ?? 0,
          etag: properties.etag ?? '',
          metadata: lowerCaseKeys(properties.metadata ?? {}),
          contentType: properties.contentType,
        };
      } catch (error) {
        // A blob with only uncommitted blocks is also a 404: nothing has been uploaded yet.
        if (statusCodeOf(error) === 404) return undefined;
        throw error;
      }
    },

    async readRange(blobPath, { offset, count, etag }) {
      assertBlobPath(blobPath);
      try {
        const response = await unavailableOnOutage(
          () =>
            container.getBlobClient(blobPath).download(offset, count, {
              ...(etag ? { conditions: { ifMatch: etag } } : {}),
              // A dropped connection resumes from where it stopped instead of failing the whole range.
              maxRetryRequests: 5,
            }),
          `read blob ${blobPath}`,
        );
        return response.readableStreamBody;
      } catch (error) {
        if (statusCodeOf(error) === 404) return undefined;
        if (statusCodeOf(error) === 412) {
          throw new AppError('integrity_mismatch', `Blob ${blobPath} was rewritten while it was being read`, { cause: error });
        }
        throw error;
      }
    },

    async writeBlob(blobPath, content, { contentType }) {
      assertBlobPath(blobPath);
      await unavailableOnOutage(
        () =>
          container.getBlockBlobClient(blobPath).upload(content, content.byteLength, {
            blobHTTPHeaders: { blobContentType: contentType },
          }),
        `write blob ${blobPath}`,
      );
    },

    async deleteBlob(blobPath): Promise<boolean> {
      assertBlobPath(blobPath);
      const result = await unavailableOnOutage(
        () => container.getBlobClient(blobPath).deleteIfExists({ deleteSnapshots: 'include' }),
        `delete blob ${blobPath}`,
      );
      return result.succeeded;
    },

    async ping(): Promise<void> {
      await pingContainer(container);
    },
  };
}

async function pingContainer(container: ContainerClient): Promise<void> {
  try {
    await unavailableOnOutage(() => container.getProperties(), `reach container ${container.containerName}`);
  } catch (error) {
    if (statusCodeOf(error) === 404) {
      throw new AppError('dependency_unavailable', `Blob container ${container.containerName} does not exist`, {
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * One user-delegation key, reused for every SAS it can cover. A new key is fetched only when a SAS would
 * expire after the cached key; callers arriving while a fetch runs wait for it instead of fetching again.
 */
class DelegationKeyCache {
  private latest: Promise<UserDelegationKey> | undefined;

  constructor(private readonly service: BlobServiceClient) {}

  async covering(sasExpiresAt: Date): Promise<UserDelegationKey> {
    for (;;) {
      const seen = this.latest;
      if (!seen) break;
      const key = await seen.catch(() => undefined);
      if (key && key.signedExpiresOn.getTime() >= sasExpiresAt.getTime()) return key;
      if (this.latest === seen) break; // nobody started a newer fetch meanwhile: start one
    }
    const fetching = this.fetch(sasExpiresAt);
    this.latest = fetching;
    fetching.catch(() => {
      if (this.latest === fetching) this.latest = undefined; // let the next caller try again
    });
    return fetching;
  }

  private fetch(sasExpiresAt: Date): Promise<UserDelegationKey> {
    const now = Date.now();
    const expiresOn = Math.min(
      now + maxExpiryFromNowMs,
      Math.max(now + preferredDelegationKeyLifetimeMs, sasExpiresAt.getTime()),
    );
    return this.service.getUserDelegationKey(new Date(now - clockSkewMs), new Date(expiresOn));
  }
}

/**
 * `attachment; filename="…"` with the name made safe for a quoted string: quotes, backslashes, control and
 * non-ASCII characters become `_`, so a hostile name can neither break out of the quotes nor inject a header.
 */
export function attachmentContentDisposition(fileName: string): string {
  const safe = fileName.replace(/[^\x20-\x7e]|["\\]/g, '_').trim() || 'download';
  return `attachment; filename="${safe}"`;
}

function assertBlobPath(blobPath: string): void {
  const segments = blobPath.split('/');
  if (blobPath.length === 0 || blobPath.length > 1024 || segments.some((s) => s === '' || s === '.' || s === '..')) {
    // Browsers and proxies normalise such paths, so the URL would name a different blob than the signature.
    throw new AppError('validation_failed', `Not a usable blob path: ${JSON.stringify(blobPath)}`, {
      fieldErrors: [{ field: 'blobPath', message: 'must be non-empty segments without . or ..' }],
    });
  }
}

function assertSasWindow(startsAt: Date | undefined, expiresAt: Date): void {
  if (startsAt && startsAt.getTime() >= expiresAt.getTime()) {
    throw new AppError('validation_failed', 'A SAS must start before it expires', {
      fieldErrors: [{ field: 'startsAt', message: 'must be before expiresAt' }],
    });
  }
  if (expiresAt.getTime() > Date.now() + maxExpiryFromNowMs) {
    throw new AppError('validation_failed', 'A user-delegation SAS cannot be valid for more than 7 days', {
      fieldErrors: [{ field: 'expiresAt', message: 'must be at most 7 days from now' }],
    });
  }
}

function lowerCaseKeys(metadata: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(metadata).map(([key, value]) => [key.toLowerCase(), value]));
}

function statusCodeOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * True for failures a later retry can fix: no HTTP answer at all (connection refused, DNS, TLS, timeout),
 * a busy or failing service, or a credential that could not get a token from the identity provider.
 */
function isUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name } = error as { name?: unknown };
  if (name === 'AuthenticationError' || name === 'CredentialUnavailableError') return true;
  const status = statusCodeOf(error);
  if (status !== undefined) return unavailableStatusCodes.has(status);
  return name === 'RestError'; // a RestError without a status never got a response
}

async function unavailableOnOutage<T>(operation: () => Promise<T>, what: string): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (isUnavailable(error)) {
      throw new AppError('dependency_unavailable', `Blob Storage did not answer when trying to ${what}`, {
        cause: error,
      });
    }
    throw error;
  }
}
