import { z } from 'zod';
import { AgeRecipient } from './contracts/encryption.js';
import { AppError } from './errors.js';

/** Comma-separated list; blanks dropped so `a, b,` is two items. */
export const csvList = z
  .string()
  .transform((raw) => raw.split(',').map((item) => item.trim()).filter((item) => item.length > 0));

const guidList = csvList.pipe(z.array(z.uuid({ message: 'must be comma-separated GUIDs (group object ids)' })));

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((raw) => raw === 'true' || raw === '1' || raw === 'yes');

const positiveMinutes = z.coerce.number().int().positive();

const httpsUrl = z.url({ protocol: /^https$/, message: 'must be an https:// URL' });
/** A setting that may be absent or empty (Bicep writes '' for an unused optional parameter). */
const optionalSetting = <S extends z.ZodType>(schema: S) => z.preprocess((value) => (value === '' ? undefined : value), schema.optional());

/** Browsers send `Origin` serialized (scheme://host[:port], no path, no trailing slash): anything else never matches. */
const originList = csvList.pipe(
  z.array(
    z.string().refine((raw) => URL.canParse(raw) && new URL(raw).origin === raw, {
      message: 'must be comma-separated origins such as https://portal.example.com (no path, no trailing slash)',
    }),
  ),
);

/**
 * Every setting the control plane (Function App) reads. Names are the app-setting names: infra/ sets each of
 * them, local.settings.sample.json lists each of them. Nothing here defaults a secret; there are no secrets:
 * Storage, Service Bus and SQL are reached with the app's managed identity.
 */
const controlPlaneSettingsObject = z.object({
    /** Entra tenant whose tokens are accepted. */
    ENTRA_TENANT_ID: z.uuid(),
    /** Accepted `aud` values: the API's application id URI and/or client id. */
    ENTRA_AUDIENCES: csvList.pipe(z.array(z.string().min(1)).min(1, 'must list at least one audience')),
    /** Authority host of the cloud (public, US Gov, China); v2 issuer = `{host}/{tenant}/v2.0`. */
    ENTRA_AUTHORITY_HOST: httpsUrl.default('https://login.microsoftonline.com'),
    /** Accept v1 tokens (issuer `{v1 host}/{tenant}/`) as well as v2. */
    ENTRA_ACCEPT_V1_TOKENS: booleanFlag.default(false),
    ENTRA_V1_ISSUER_HOST: httpsUrl.default('https://sts.windows.net'),
    RBAC_ADMIN_GROUP_IDS: guidList.default([]),
    RBAC_AUDITOR_GROUP_IDS: guidList.default([]),
    /** Groups whose members may approve or reject raw copies of `raw-needs-approval` databases (not their own). */
    RBAC_APPROVER_GROUP_IDS: guidList.default([]),
    RBAC_REQUESTER_GROUP_IDS: guidList.default([]),
    /** Blob endpoint of the backup storage account, e.g. https://stbackups.blob.core.windows.net */
    BACKUP_BLOB_ENDPOINT: httpsUrl,
    BACKUP_CONTAINER: z
      .string()
      .regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'must be a valid blob container name'),
    SERVICEBUS_FULLY_QUALIFIED_NAMESPACE: z
      .string()
      .regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'must be a host name such as sb-dbdist.servicebus.windows.net'),
    SERVICEBUS_JOBS_TOPIC: z.string().min(1).default('backup-jobs'),
    /** The runners' subscriptions on the jobs topic, whose dead-letter queues the control plane watches. */
    SERVICEBUS_RUNNER_SUBSCRIPTIONS: csvList.default([]),
    /** Azure SQL logical server host, e.g. sql-dbdist.database.windows.net (Entra-only auth). */
    SQL_SERVER: z.string().min(1),
    SQL_DATABASE: z.string().min(1),
    /** Entra token scope for Azure SQL; sovereign clouds have their own (e.g. https://database.usgovcloudapi.net/.default). */
    SQL_TOKEN_SCOPE: z.string().regex(/^https:\/\/[^\s/]+\/\.default$/, 'must look like https://database.windows.net/.default').default('https://database.windows.net/.default'),
    /** Lifetime of a download link when the caller asks for none. */
    SAS_TTL_DEFAULT_MINUTES: positiveMinutes.default(60),
    /** Upper bound for any download link, above every database's own policy. */
    SAS_TTL_MAX_MINUTES: positiveMinutes.default(24 * 60),
    /** Lifetime of the runner's write SAS; the runner renews it on demand. */
    UPLOAD_SAS_TTL_MINUTES: positiveMinutes.default(30),
    /** Browser origins allowed to call the API; the app answers CORS itself (platform CORS stays off). */
    CORS_ORIGINS: originList.default([]),
    /** Age (days) at which the storage lifecycle rule deletes backup blobs; no policy may keep them longer. */
    BACKUP_LIFECYCLE_DELETE_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
    /** Largest request body accepted (bytes); larger ones get 413 before being read whole or parsed. */
    MAX_REQUEST_BODY_BYTES: z.coerce.number().int().min(1024).max(4 * 1024 * 1024).default(64 * 1024),
    /** Key Vault key that signs backup manifests, without a version (the newest version signs), e.g. https://kv-dbdist.vault.azure.net/keys/manifest-signing */
    MANIFEST_SIGNING_KEY_ID: httpsUrl.regex(/\/keys\/[A-Za-z0-9-]+\/?$/, 'must be a Key Vault key URL without a version: https://<vault>.vault.azure.net/keys/<name>'),
    /** MiB one re-hash activity reads before it hands its state back (one call stays well under the Functions timeout). */
    REHASH_BUDGET_MIB: z.coerce.number().int().min(1).max(64 * 1024).default(4096),
    /** Re-verifications the timer starts per tick at most. */
    REVERIFY_BATCH_SIZE: z.coerce.number().int().min(1).max(1000).default(20),
    /** Event Grid topic endpoint that gets notifications as CloudEvents (managed identity, EventGrid Data Sender). */
    EVENTGRID_TOPIC_ENDPOINT: optionalSetting(httpsUrl),
    /** Webhooks (Teams Workflows, Slack-compatible) that get notifications: comma-separated https URLs. */
    NOTIFY_WEBHOOK_URLS: csvList.pipe(z.array(httpsUrl)).default([]),
    /** HMAC-SHA256 key that signs webhook calls; in Azure a Key Vault reference. Required with webhooks. */
    NOTIFY_WEBHOOK_SECRET: optionalSetting(z.string().min(32, 'must be at least 32 characters')),
    /**
     * The organisation's recovery keys (age X25519 public keys, `age1…`, comma-separated): every encrypted copy
     * is also encrypted to each. Rotate by adding the new key, then removing the old one (docs/encryption.md).
     */
    ENCRYPTION_RECOVERY_RECIPIENTS: csvList.pipe(z.array(AgeRecipient)).default([]),
});

export const controlPlaneSettingsSchema = controlPlaneSettingsObject
  .refine((s) => s.SAS_TTL_DEFAULT_MINUTES <= s.SAS_TTL_MAX_MINUTES, {
    path: ['SAS_TTL_DEFAULT_MINUTES'],
    message: 'must not exceed SAS_TTL_MAX_MINUTES',
  })
  .refine((s) => s.NOTIFY_WEBHOOK_URLS.length === 0 || s.NOTIFY_WEBHOOK_SECRET !== undefined, {
    path: ['NOTIFY_WEBHOOK_SECRET'],
    message: 'is required when NOTIFY_WEBHOOK_URLS is set (webhook calls are signed)',
  });

export type ControlPlaneSettings = z.output<typeof controlPlaneSettingsSchema>;

/** The settings every HTTP response depends on, readable without the rest (probes and preflights need no SQL). */
export const httpSettingsSchema = controlPlaneSettingsObject.pick({ CORS_ORIGINS: true, MAX_REQUEST_BODY_BYTES: true });
export type HttpSettings = z.output<typeof httpSettingsSchema>;

/** Setting names, for infra tests and the sample settings file. */
export const controlPlaneSettingNames = Object.keys(controlPlaneSettingsObject.shape) as (keyof ControlPlaneSettings)[];

/**
 * Parses settings from an environment-like record. Every bad or missing setting is named in one error,
 * so an operator fixes them all in one go.
 */
export function parseSettings<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined>,
  what = 'settings',
): z.output<S> {
  // Empty strings count as missing: app settings are often created blank.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.map(String).join('.') || '(root)';
    const missing = issue.code === 'invalid_type' && cleaned[name] === undefined;
    return { field: name, message: missing ? 'is required but not set' : issue.message };
  });
  throw new AppError(
    'config_invalid',
    `Invalid ${what}: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`,
    { fieldErrors: problems },
  );
}

let cached: ControlPlaneSettings | undefined;

/** The control plane's settings, read from the process environment once. */
export function controlPlaneSettings(): ControlPlaneSettings {
  cached ??= parseSettings(controlPlaneSettingsSchema, process.env, 'control plane settings');
  return cached;
}
