/**
 * The Function App's dependencies in Azure, built from app settings (shared/config.ts). Every Azure client
 * authenticates with the app's managed identity through DefaultAzureCredential: no keys, no secrets.
 * Installed by the composition root (functions/index.ts) and built lazily on first use; a host that brings its own
 * Deps never imports this.
 */
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { EntraTokenValidator, tokenValidatorOptionsFromSettings } from '../shared/auth/entra-validator.js';
import { rbacPolicyFromSettings } from '../shared/auth/rbac.js';
import { type ControlPlaneSettings, controlPlaneSettings } from '../shared/config.js';
import { createMssqlStore } from '../shared/db/mssql.js';
import { createDeadLetterInbox, createJobQueue, serviceBusClientFrom } from '../shared/servicebus.js';
import { keyVaultManifestSigner } from '../shared/integrity/keyvault-signer.js';
import { createBlobGateway } from '../shared/storage/blob-gateway.js';
import { durableJobOrchestrations } from './durable-client.js';
import { eventGridChannel, webhookChannel, type NotificationChannel } from '../services/notification-channels.js';
import type { Deps, Limits } from '../services/deps.js';

export function limitsFromSettings(settings: ControlPlaneSettings): Limits {
  return {
    sasTtlDefaultMinutes: settings.SAS_TTL_DEFAULT_MINUTES,
    sasTtlMaxMinutes: settings.SAS_TTL_MAX_MINUTES,
    uploadSasTtlMinutes: settings.UPLOAD_SAS_TTL_MINUTES,
    lifecycleDeleteDays: settings.BACKUP_LIFECYCLE_DELETE_DAYS,
  };
}

export function tokenValidatorFromSettings(settings: ControlPlaneSettings): EntraTokenValidator {
  return new EntraTokenValidator(tokenValidatorOptionsFromSettings(settings));
}

export async function productionDeps(settings: ControlPlaneSettings = controlPlaneSettings()): Promise<Deps> {
  const credential = new DefaultAzureCredential();
  const store = await createMssqlStore({ server: settings.SQL_SERVER, database: settings.SQL_DATABASE, credential, scope: settings.SQL_TOKEN_SCOPE });
  const serviceBus = serviceBusClientFrom({ fullyQualifiedNamespace: settings.SERVICEBUS_FULLY_QUALIFIED_NAMESPACE, credential });
  return {
    store,
    blobs: createBlobGateway({ blobEndpoint: settings.BACKUP_BLOB_ENDPOINT, container: settings.BACKUP_CONTAINER, credential }),
    queue: createJobQueue({ client: serviceBus, topic: settings.SERVICEBUS_JOBS_TOPIC }),
    deadLetters: createDeadLetterInbox({
      client: serviceBus,
      topic: settings.SERVICEBUS_JOBS_TOPIC,
      subscriptions: settings.SERVICEBUS_RUNNER_SUBSCRIPTIONS,
    }),
    tokens: tokenValidatorFromSettings(settings),
    rbac: rbacPolicyFromSettings(settings),
    limits: limitsFromSettings(settings),
    recoveryRecipients: settings.ENCRYPTION_RECOVERY_RECIPIENTS,
    integrity: {
      signer: keyVaultManifestSigner(settings.MANIFEST_SIGNING_KEY_ID, credential),
      rehashBudgetBytes: settings.REHASH_BUDGET_MIB * 1024 * 1024,
      reverifyBatchSize: settings.REVERIFY_BATCH_SIZE,
    },
    now: () => new Date(),
    notifications: notificationChannelsFromSettings(settings, credential),
    orchestrations: durableJobOrchestrations,
  };
}

export function notificationChannelsFromSettings(settings: ControlPlaneSettings, credential: TokenCredential): NotificationChannel[] {
  const channels: NotificationChannel[] = [];
  if (settings.EVENTGRID_TOPIC_ENDPOINT) channels.push(eventGridChannel({ endpoint: settings.EVENTGRID_TOPIC_ENDPOINT, credential }));
  for (const url of settings.NOTIFY_WEBHOOK_URLS) channels.push(webhookChannel({ url, secret: settings.NOTIFY_WEBHOOK_SECRET! }));
  return channels;
}
