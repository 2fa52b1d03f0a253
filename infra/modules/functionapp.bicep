// The control plane: a Linux Function App on the Flex Consumption plan with a system-assigned identity.
// No secrets in app settings: the host and Durable reach their storage account, and the code reaches backup
// storage, Service Bus and SQL, with the managed identity (roles in function-roles.bicep).
// Every setting shared/config.ts reads is set here (test/infra checks the required ones).

@description('Function App name (globally unique host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Region of the app.')
param location string

@description('Tags applied to the plan; the app also gets azd-service-name.')
param tags object

@description('Name of the host storage account (Functions host, Durable task hub, deployment package).')
param hostStorageName string

@description('Blob endpoint of the host storage account, without trailing slash.')
param hostBlobEndpoint string

@description('Container in the host storage account holding the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (not a secret; ingestion is Entra-authenticated).')
param applicationInsightsConnectionString string

@description('Subnet for VNet integration (delegated to Microsoft.App/environments); empty for none.')
param virtualNetworkSubnetId string = ''

@description('Node.js major version.')
@allowed([
  '20'
  '22'
])
param nodeVersion string = '22'

@description('Upper bound of instances the plan scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance (MB).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---- control-plane settings (names and meaning: shared/config.ts) ----

@description('ENTRA_TENANT_ID: tenant whose tokens the API accepts.')
param entraTenantId string

@description('ENTRA_AUDIENCES: accepted token audiences (application id URI and/or client id of the API app).')
@minLength(1)
param entraAudiences string[]

@description('ENTRA_AUTHORITY_HOST: authority host of the cloud.')
param entraAuthorityHost string

@description('ENTRA_ACCEPT_V1_TOKENS: accept v1 tokens as well as v2.')
param entraAcceptV1Tokens bool

@description('ENTRA_V1_ISSUER_HOST: issuer host of v1 tokens.')
param entraV1IssuerHost string

@description('RBAC_ADMIN_GROUP_IDS: Entra group object ids granting the Admin role.')
param rbacAdminGroupIds string[]

@description('RBAC_AUDITOR_GROUP_IDS: Entra group object ids granting the Auditor role.')
param rbacAuditorGroupIds string[]

@description('RBAC_APPROVER_GROUP_IDS: Entra group object ids granting the Approver role (approve raw copies).')
param rbacApproverGroupIds string[] = []

@description('RBAC_REQUESTER_GROUP_IDS: Entra group object ids granting the Requester role.')
param rbacRequesterGroupIds string[]

@description('BACKUP_BLOB_ENDPOINT: blob endpoint of the backup storage account.')
param backupBlobEndpoint string

@description('BACKUP_CONTAINER: container of the backups.')
param backupContainerName string

@description('SERVICEBUS_FULLY_QUALIFIED_NAMESPACE: host name of the Service Bus namespace.')
param serviceBusFullyQualifiedNamespace string

@description('SERVICEBUS_JOBS_TOPIC: jobs topic name.')
param serviceBusJobsTopic string

@description('SERVICEBUS_RUNNER_SUBSCRIPTIONS: the runners\' subscriptions, whose dead-letter queues the control plane watches.')
param serviceBusRunnerSubscriptions string[]

@description('SQL_SERVER: host name of the Azure SQL logical server.')
param sqlServer string

@description('SQL_DATABASE: database name.')
param sqlDatabase string

// environment().suffixes.sqlServerHostname is `.database.windows.net` in the public cloud, its sovereign twin elsewhere.
@description('SQL_TOKEN_SCOPE: Entra token scope for Azure SQL in this cloud.')
param sqlTokenScope string = 'https://${substring(environment().suffixes.sqlServerHostname, 1)}/.default'

@description('SAS_TTL_DEFAULT_MINUTES: lifetime of a download link when the caller asks for none.')
param sasTtlDefaultMinutes int

@description('SAS_TTL_MAX_MINUTES: upper bound of any download link.')
param sasTtlMaxMinutes int

@description('UPLOAD_SAS_TTL_MINUTES: lifetime of the runner\'s write SAS.')
param uploadSasTtlMinutes int

@description('MANIFEST_SIGNING_KEY_ID: Key Vault key (versionless) that signs backup manifests.')
param manifestSigningKeyId string

@description('REHASH_BUDGET_MIB: MiB one re-hash activity reads before handing its state on (keep one call well under the Functions timeout).')
param rehashBudgetMiB int = 4096

@description('REVERIFY_BATCH_SIZE: re-verifications the timer starts per tick at most.')
param reverifyBatchSize int = 20

@description('CORS_ORIGINS: browser origins allowed to call the API (handled by the app, not platform CORS).')
param corsOrigins string[]

@description('MAX_REQUEST_BODY_BYTES: largest request body the API reads.')
param maxRequestBodyBytes int

@description('BACKUP_LIFECYCLE_DELETE_DAYS: age at which the storage lifecycle rule deletes backup blobs.')
param backupLifecycleDeleteDays int

@description('EVENTGRID_TOPIC_ENDPOINT: the topic notifications are published to.')
param eventGridTopicEndpoint string

@description('NOTIFY_WEBHOOK_URLS: webhooks that get notifications.')
param notifyWebhookUrls string[] = []

@description('Key Vault secret URI of the webhook signing key; NOTIFY_WEBHOOK_SECRET becomes a Key Vault reference to it.')
param notifyWebhookSigningKeyUri string = ''

@description('ENCRYPTION_RECOVERY_RECIPIENTS: recovery age public keys (age1…); public, not secrets.')
param encryptionRecoveryRecipients string[]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      // Platform CORS off on purpose: the app answers CORS from CORS_ORIGINS (functions/http-policy.ts). With
      // origins here, the platform would answer preflights itself and override the app's headers.
      cors: {
        allowedOrigins: []
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostBlobEndpoint}/${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: nodeVersion
      }
    }
  }

  // Replaces the whole app-settings set on every deployment: settings edited in the portal do not survive.
  resource appSettings 'config' = {
    name: 'appsettings'
    properties: {
      // Functions host + Durable task hub, identity-based (no AzureWebJobsStorage connection string).
      AzureWebJobsStorage__accountName: hostStorageName
      AzureWebJobsStorage__credential: 'managedidentity'
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'

      ENTRA_TENANT_ID: entraTenantId
      ENTRA_AUDIENCES: join(entraAudiences, ',')
      ENTRA_AUTHORITY_HOST: entraAuthorityHost
      // Not string(): ARM renders a bool as 'True', which shared/config.ts rejects.
      ENTRA_ACCEPT_V1_TOKENS: entraAcceptV1Tokens ? 'true' : 'false'
      ENTRA_V1_ISSUER_HOST: entraV1IssuerHost
      RBAC_ADMIN_GROUP_IDS: join(rbacAdminGroupIds, ',')
      RBAC_AUDITOR_GROUP_IDS: join(rbacAuditorGroupIds, ',')
      RBAC_APPROVER_GROUP_IDS: join(rbacApproverGroupIds, ',')
      RBAC_REQUESTER_GROUP_IDS: join(rbacRequesterGroupIds, ',')
      BACKUP_BLOB_ENDPOINT: backupBlobEndpoint
      BACKUP_CONTAINER: backupContainerName
      SERVICEBUS_FULLY_QUALIFIED_NAMESPACE: serviceBusFullyQualifiedNamespace
      SERVICEBUS_JOBS_TOPIC: serviceBusJobsTopic
      SERVICEBUS_RUNNER_SUBSCRIPTIONS: join(serviceBusRunnerSubscriptions, ',')
      SQL_SERVER: sqlServer
      SQL_DATABASE: sqlDatabase
      SQL_TOKEN_SCOPE: sqlTokenScope
      SAS_TTL_DEFAULT_MINUTES: string(sasTtlDefaultMinutes)
      SAS_TTL_MAX_MINUTES: string(sasTtlMaxMinutes)
      UPLOAD_SAS_TTL_MINUTES: string(uploadSasTtlMinutes)
      MANIFEST_SIGNING_KEY_ID: manifestSigningKeyId
      REHASH_BUDGET_MIB: string(rehashBudgetMiB)
      REVERIFY_BATCH_SIZE: string(reverifyBatchSize)
      CORS_ORIGINS: join(corsOrigins, ',')
      MAX_REQUEST_BODY_BYTES: string(maxRequestBodyBytes)
      BACKUP_LIFECYCLE_DELETE_DAYS: string(backupLifecycleDeleteDays)
      EVENTGRID_TOPIC_ENDPOINT: eventGridTopicEndpoint
      NOTIFY_WEBHOOK_URLS: join(notifyWebhookUrls, ',')
      NOTIFY_WEBHOOK_SECRET: empty(notifyWebhookSigningKeyUri) ? '' : '@Microsoft.KeyVault(SecretUri=${notifyWebhookSigningKeyUri})'
      ENCRYPTION_RECOVERY_RECIPIENTS: join(encryptionRecoveryRecipients, ',')
    }
  }

  // Deployments (azd deploy, OneDeploy) authenticate with Entra ID; no publishing passwords.
  resource scmBasicAuth 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }

  resource ftpBasicAuth 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }
}

output name string = functionApp.name
output principalId string = functionApp.identity.principalId
output defaultHostName string = functionApp.properties.defaultHostName
