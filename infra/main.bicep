// dbdist infrastructure, deployed by `azd up` (or `az deployment sub create`, see docs/infra.md).
// Subscription scope: creates the resource group, then one module per resource family.
targetScope = 'subscription'

import { runnerSubscription } from 'types.bicep'

// ---------------------------------------------------------------- azd environment

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource token.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; default rg-<environmentName>.')
param resourceGroupName string = ''

// ---------------------------------------------------------------- Entra ID (see docs/infra.md for the app registrations)

@minLength(1)
@description('Application (client) id of the API app registration: the `aud` of v2 access tokens.')
param apiClientId string

@minLength(1)
@description('Application id URI of the API app registration, e.g. api://<client id>: the resource clients and runners request tokens for (`<uri>/.default`), and the `aud` of v1 tokens.')
param apiAudience string

@description('Further accepted audiences, if any.')
param extraApiAudiences string[] = []

@description('Tenant whose tokens the API accepts; default the deployment\'s tenant.')
param entraTenantId string = tenant().tenantId

@description('Authority host of the cloud.')
param entraAuthorityHost string = 'https://login.microsoftonline.com'

@description('Accept v1 tokens (API app manifest accessTokenAcceptedVersion null/1) as well as v2.')
param entraAcceptV1Tokens bool = false

@description('Issuer host of v1 tokens.')
param entraV1IssuerHost string = 'https://sts.windows.net'

@description('Entra group object ids granting the Admin role (app role assignments grant it too).')
param rbacAdminGroupIds string[] = []

@description('Entra group object ids granting the Auditor role.')
param rbacAuditorGroupIds string[] = []
@description('Entra group object ids granting the Approver role (approve raw copies of raw-needs-approval databases).')
param rbacApproverGroupIds string[] = []

@description('Entra group object ids granting the Requester role.')
param rbacRequesterGroupIds string[] = []

@description('Browser origins allowed to call the API besides the portal (its origin is added on its own).')
param corsOrigins string[] = []

@description('The organisation\'s recovery keys: age X25519 public keys (age1…) every encrypted copy is also encrypted to.')
param encryptionRecoveryRecipients string[] = []

@description('Largest request body the API reads (bytes); larger ones get 413.')
@minValue(1024)
@maxValue(4194304)
param maxRequestBodyBytes int = 65536

// ---------------------------------------------------------------- portal

@description('Deploy the portal (a Static Web App, azd service `portal`).')
param deployPortal bool = true

@description('Region of the portal\'s Static Web App (a region that offers them; the content is served from a global edge).')
param portalLocation string = 'westeurope'

@description('Static Web App plan of the portal.')
@allowed([
  'Free'
  'Standard'
])
param portalSku string = 'Free'

@description('E-mail addresses the alert action group notifies (failed jobs, dead letters, integrity failures, RPO breaches, Function errors).')
param alertEmails string[] = []

@description('Optional webhook the alert action group calls (common alert schema), e.g. a Teams Workflows URL.')
param alertWebhookUrl string = ''

@description('NOTIFY_WEBHOOK_URLS: webhooks that get dbdist notifications (JSON with `text`, HMAC-signed).')
param notifyWebhookUrls string[] = []

@description('Key Vault secret URI of the webhook signing key (NOTIFY_WEBHOOK_SECRET as a Key Vault reference); required with notifyWebhookUrls.')
param notifyWebhookSigningKeyUri string = ''

// ---------------------------------------------------------------- backups and links

@description('Blob container of the backups.')
param backupContainerName string = 'backups'

@description('Last line of defence: a lifecycle rule deletes backup blobs this many days after they were written. Keep it above the longest retentionDays of any database policy.')
@minValue(1)
@maxValue(3650)
param backupMaxRetentionDays int = 30

@description('Days a deleted backup blob stays recoverable (blob soft delete). Deleted backups still hold data for this long.')
@minValue(1)
@maxValue(365)
param backupSoftDeleteDays int = 7

@description('Lifetime of a download link when the caller asks for none (minutes).')
@minValue(1)
param sasTtlDefaultMinutes int = 60

@description('Upper bound of any download link (minutes).')
@minValue(1)
param sasTtlMaxMinutes int = 1440

@description('Lifetime of the runner\'s write SAS (minutes); the runner renews it on demand.')
@minValue(1)
param uploadSasTtlMinutes int = 30

// ---------------------------------------------------------------- Service Bus

@description('Jobs topic name.')
param serviceBusTopicName string = 'backup-jobs'

@description('One subscription per runner agent: { name, serverIds, principalId }. Each runner receives only the jobs of its servers, and only from its subscription.')
param runnerSubscriptions runnerSubscription[] = []

@description('Deliveries of a job message before it is dead-lettered.')
@minValue(1)
@maxValue(100)
param serviceBusMaxDeliveryCount int = 5

// ---------------------------------------------------------------- Azure SQL

@minLength(1)
@description('Entra admin of the SQL server: display name of a user or (recommended) a group.')
param sqlEntraAdminLogin string

@minLength(36)
@maxLength(36)
@description('Entra admin of the SQL server: object id (a GUID, not a name) of that user or group.')
param sqlEntraAdminObjectId string

@description('Kind of the SQL Entra admin.')
@allowed([
  'User'
  'Group'
  'Application'
])
param sqlEntraAdminPrincipalType string = 'User'

@description('How the Function App reaches SQL: public endpoint with the "Allow Azure services" rule, or a private endpoint (VNet integration, public access off).')
@allowed([
  'PublicAzureServices'
  'PrivateEndpoint'
])
param sqlConnectivity string = 'PublicAzureServices'

@description('With the public endpoint: the deployer\'s public IPv4 address, admitted so the post-provision migration can reach the database from a workstation (azd env set SQL_CLIENT_IP_ADDRESS …). Empty: no such rule.')
param sqlClientIpAddress string = ''

@description('Database SKU.')
param sqlDatabaseSku object = {
  name: 'Basic'
  tier: 'Basic'
}

@description('Database name.')
param sqlDatabaseName string = 'dbdist'

// ---------------------------------------------------------------- Function App

@description('Node.js major version of the Function App (Flex Consumption supports 20 and 22).')
@allowed([
  '20'
  '22'
])
param nodeVersion string = '22'

// ---------------------------------------------------------------- names

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var deploymentContainerName = 'app-package-${resourceToken}'
var usePrivateEndpoint = sqlConnectivity == 'PrivateEndpoint'
var keyVaultName = 'kv-${take(resourceToken, 21)}'
var manifestKeyName = 'manifest-signing'

// Bicep has no pattern decorator: a GUID is five dash-separated groups of 8-4-4-4-12 hexadecimal digits.
var guidCharacters = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f', '-']
var sqlEntraAdminObjectIdNonHex = reduce(guidCharacters, toLower(sqlEntraAdminObjectId), (rest, character) => replace(rest, character, ''))
var sqlEntraAdminObjectIdIsGuid = empty(sqlEntraAdminObjectIdNonHex) && map(split(sqlEntraAdminObjectId, '-'), group => length(group)) == [8, 4, 4, 4, 12]
// Indexing past the end stops the deployment before anything is created when the id is not a GUID.
var sqlEntraAdminObjectIdChecked = [sqlEntraAdminObjectId][sqlEntraAdminObjectIdIsGuid ? 0 : 1]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module backupStorage 'modules/storage.bicep' = {
  name: 'backup-storage'
  scope: rg
  params: {
    name: 'stbak${resourceToken}'
    location: location
    tags: tags
    containerNames: [
      backupContainerName
    ]
    blobSoftDeleteDays: backupSoftDeleteDays
    deleteBlobsAfterDays: backupMaxRetentionDays
    // Every blob of the backup container is a backup (shared/storage/paths.ts names them backups/<server>/…).
    deleteBlobsPrefix: '${backupContainerName}/'
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: 'stfn${resourceToken}'
    location: location
    tags: tags
    containerNames: [
      deploymentContainerName
    ]
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-${resourceToken}'
    location: location
    tags: tags
    topicName: serviceBusTopicName
    runnerSubscriptions: runnerSubscriptions
    maxDeliveryCount: serviceBusMaxDeliveryCount
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module sql 'modules/sql.bicep' = {
  name: 'sql'
  scope: rg
  params: {
    name: 'sql-${resourceToken}'
    location: location
    tags: tags
    databaseName: sqlDatabaseName
    databaseSku: sqlDatabaseSku
    entraAdminLogin: sqlEntraAdminLogin
    entraAdminObjectId: sqlEntraAdminObjectIdChecked
    entraAdminPrincipalType: sqlEntraAdminPrincipalType
    publicNetworkAccess: !usePrivateEndpoint
    allowAzureServices: !usePrivateEndpoint
    clientIpAddress: sqlClientIpAddress
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module network 'modules/network.bicep' = if (usePrivateEndpoint) {
  name: 'network'
  scope: rg
  params: {
    location: location
    tags: tags
    vnetName: 'vnet-${resourceToken}'
    sqlServerId: sql.outputs.id
  }
}

module portal 'modules/staticwebapp.bicep' = if (deployPortal) {
  name: 'portal'
  scope: rg
  params: {
    name: 'swa-${resourceToken}'
    location: portalLocation
    tags: tags
    sku: portalSku
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'evgt-${resourceToken}'
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    hostStorageName: hostStorage.outputs.name
    hostBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    virtualNetworkSubnetId: usePrivateEndpoint ? network.outputs.appSubnetId : ''
    nodeVersion: nodeVersion
    entraTenantId: entraTenantId
    entraAudiences: concat([apiClientId, apiAudience], extraApiAudiences)
    entraAuthorityHost: entraAuthorityHost
    entraAcceptV1Tokens: entraAcceptV1Tokens
    entraV1IssuerHost: entraV1IssuerHost
    rbacAdminGroupIds: rbacAdminGroupIds
    rbacAuditorGroupIds: rbacAuditorGroupIds
    rbacApproverGroupIds: rbacApproverGroupIds
    rbacRequesterGroupIds: rbacRequesterGroupIds
    backupBlobEndpoint: backupStorage.outputs.blobEndpoint
    backupContainerName: backupContainerName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    serviceBusJobsTopic: serviceBus.outputs.topicName
    serviceBusRunnerSubscriptions: serviceBus.outputs.subscriptionNames
    sqlServer: sql.outputs.fullyQualifiedDomainName
    sqlDatabase: sql.outputs.databaseName
    sasTtlDefaultMinutes: sasTtlDefaultMinutes
    sasTtlMaxMinutes: sasTtlMaxMinutes
    uploadSasTtlMinutes: uploadSasTtlMinutes
    corsOrigins: deployPortal ? union(corsOrigins, [portal!.outputs.origin]) : corsOrigins
    encryptionRecoveryRecipients: encryptionRecoveryRecipients
    maxRequestBodyBytes: maxRequestBodyBytes
    // The API refuses a policy that keeps backups longer than the lifecycle rule would let them live.
    backupLifecycleDeleteDays: backupMaxRetentionDays
    eventGridTopicEndpoint: eventGrid.outputs.endpoint
    notifyWebhookUrls: notifyWebhookUrls
    notifyWebhookSigningKeyUri: notifyWebhookSigningKeyUri
    // Known before the vault exists (its name is derived), so the app and the vault need not wait on each other.
    manifestSigningKeyId: 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/keys/${manifestKeyName}'
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    keyName: manifestKeyName
    principalId: functionApp.outputs.principalId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    eventGridTopicName: eventGrid.outputs.name
    actionGroupName: 'ag-${resourceToken}'
    functionPrincipalId: functionApp.outputs.principalId
    functionAppName: functionApp.outputs.name
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    serviceBusName: serviceBus.outputs.name
    alertEmails: alertEmails
    alertWebhookUrl: alertWebhookUrl
  }
}

module functionRoles 'modules/function-roles.bicep' = {
  name: 'function-roles'
  scope: rg
  params: {
    principalId: functionApp.outputs.principalId
    backupStorageName: backupStorage.outputs.name
    backupContainerName: backupContainerName
    hostStorageName: hostStorage.outputs.name
    serviceBusName: serviceBus.outputs.name
    serviceBusTopicName: serviceBus.outputs.topicName
    serviceBusRunnerSubscriptions: serviceBus.outputs.subscriptionNames
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// ---------------------------------------------------------------- outputs (azd writes them to .azure/<env>/.env)

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = entraTenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_PRINCIPAL_ID string = functionApp.outputs.principalId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output MANIFEST_SIGNING_KEY_ID string = keyVault.outputs.keyId

// What clients and the runner agent need (docs/infra.md maps them to the runner's config).
output PORTAL_URL string = deployPortal ? '${portal!.outputs.origin}/' : ''
output API_BASE_URL string = 'https://${functionApp.outputs.defaultHostName}/api'
output API_AUDIENCE string = apiAudience
output API_CLIENT_ID string = apiClientId
// The runner's api.scope: client-credentials tokens ask for <application id URI>/.default.
output RUNNER_API_SCOPE string = '${apiAudience}/.default'
output SERVICEBUS_FULLY_QUALIFIED_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output SERVICEBUS_JOBS_TOPIC string = serviceBus.outputs.topicName
output SERVICEBUS_RUNNER_SUBSCRIPTIONS string[] = serviceBus.outputs.subscriptionNames
output BACKUP_BLOB_ENDPOINT string = backupStorage.outputs.blobEndpoint
output BACKUP_CONTAINER string = backupContainerName
output SQL_SERVER string = sql.outputs.fullyQualifiedDomainName
output SQL_DATABASE string = sql.outputs.databaseName
// The migration hook tells a workstation it cannot reach from one that need not try (private endpoint).
output SQL_CONNECTIVITY string = sqlConnectivity
output EVENTGRID_TOPIC_ENDPOINT string = eventGrid.outputs.endpoint
