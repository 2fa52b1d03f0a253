/**
 * The control-plane settings a test does not care about: valid values for every required one besides the Entra
 * ones, so a test spells out only what it checks. One place, so a newly required setting is added once.
 */
export const requiredResourceSettings = {
  BACKUP_BLOB_ENDPOINT: 'https://stbackups.blob.core.windows.net',
  BACKUP_CONTAINER: 'backups',
  SERVICEBUS_FULLY_QUALIFIED_NAMESPACE: 'sb-dbdist.servicebus.windows.net',
  SQL_SERVER: 'sql-dbdist.database.windows.net',
  SQL_DATABASE: 'dbdist',
  MANIFEST_SIGNING_KEY_ID: 'https://kv-dbdist.vault.azure.net/keys/manifest-signing',
} as const;
