// One storage account with private blob containers. Used twice by main.bicep: for the backups (soft delete +
// lifecycle rule) and for the Functions host (Durable task hub, deployment package).
// Shared keys are off on both: every client (the Functions host, Durable, the Flex deployment, the API) uses
// Entra ID, and the on-prem runner only ever gets user-delegation SAS, which are signed with an Entra-issued
// delegation key and keep working with shared keys disabled.

@description('Storage account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the account.')
param location string

@description('Tags applied to the account.')
param tags object

@description('Private blob containers to create.')
param containerNames string[] = []

@description('Days a deleted blob stays recoverable (blob soft delete); 0 turns soft delete off.')
@minValue(0)
@maxValue(365)
param blobSoftDeleteDays int = 0

@description('Lifecycle rule: delete block blobs under deleteBlobsPrefix this many days after their last modification; 0 means no rule.')
@minValue(0)
param deleteBlobsAfterDays int = 0

@description('Prefix the lifecycle rule applies to, starting with the container name (e.g. "backups/").')
param deleteBlobsPrefix string = ''

@description('Log Analytics workspace receiving the blob service logs (reads, writes, deletes); empty for none.')
param logAnalyticsWorkspaceId string = ''

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }

  resource blobService 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: {
        enabled: blobSoftDeleteDays > 0
        days: blobSoftDeleteDays > 0 ? blobSoftDeleteDays : null
      }
      containerDeleteRetentionPolicy: {
        enabled: blobSoftDeleteDays > 0
        days: blobSoftDeleteDays > 0 ? blobSoftDeleteDays : null
      }
    }

    resource containers 'containers' = [
      for containerName in containerNames: {
        name: containerName
        properties: {
          publicAccess: 'None'
        }
      }
    ]
  }

  // The last line of defence: if an orchestration never deletes its blob (bug, purged history), the
  // platform still does once the longest retention has passed.
  resource lifecycle 'managementPolicies' = if (deleteBlobsAfterDays > 0) {
    name: 'default'
    properties: {
      policy: {
        rules: [
          {
            // Lifecycle rule names are alphanumeric only.
            name: 'deleteExpiredBackups'
            enabled: true
            type: 'Lifecycle'
            definition: {
              filters: {
                blobTypes: [
                  'blockBlob'
                ]
                prefixMatch: [
                  deleteBlobsPrefix
                ]
              }
              actions: {
                baseBlob: {
                  delete: {
                    daysAfterModificationGreaterThan: deleteBlobsAfterDays
                  }
                }
                snapshot: {
                  delete: {
                    daysAfterCreationGreaterThan: deleteBlobsAfterDays
                  }
                }
              }
            }
          }
        ]
      }
    }
  }
}

// Every download (a read through a SAS) lands in StorageBlobLogs with the SAS correlation id (scid) in its Uri:
// docs/audit-downloads.md joins it to the `sas.download_issued` audit row.
resource blobLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'blob-logs-to-log-analytics'
  scope: account::blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

output name string = account.name
output id string = account.id
// Without the trailing slash the platform adds, e.g. https://stx.blob.core.windows.net
output blobEndpoint string = 'https://${account.name}.blob.${environment().suffixes.storage}'
