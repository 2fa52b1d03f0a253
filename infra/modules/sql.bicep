// Azure SQL logical server + the dbdist database, Entra-only authentication (no SQL logins, no password).
// The Function App's identity still has to be created as a contained user in the database: see docs/infra.md
// ("After the first deployment"); ARM cannot run T-SQL.

@description('Logical server name (globally unique).')
param name string

@description('Region of the server.')
param location string

@description('Tags applied to the server and database.')
param tags object

@description('Database name.')
param databaseName string

@description('Database SKU, e.g. { name: \'Basic\', tier: \'Basic\' } or { name: \'S0\', tier: \'Standard\' }.')
param databaseSku object = {
  name: 'Basic'
  tier: 'Basic'
}

@description('Entra admin of the server: display name of the user or group.')
param entraAdminLogin string

@description('Entra admin of the server: object id of the user or group (a group is recommended).')
param entraAdminObjectId string

@description('Kind of the Entra admin principal.')
@allowed([
  'User'
  'Group'
  'Application'
])
param entraAdminPrincipalType string = 'Group'

@description('Allow public network access. Off when the database is reached through a private endpoint (network.bicep).')
param publicNetworkAccess bool = true

@description('With public access on: the "Allow Azure services and resources to access this server" rule (needed by the Flex Consumption app without VNet integration).')
param allowAzureServices bool = true

@description('With public access on: one IPv4 address admitted by a firewall rule, e.g. the deployer\'s workstation running the migration hook. Empty: none.')
param clientIpAddress string = ''

@description('Log Analytics workspace (resource id) for the database\'s diagnostics and the server\'s audit log.')
param logAnalyticsWorkspaceId string

resource server 'Microsoft.Sql/servers@2023-08-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    minimalTlsVersion: '1.2'
    publicNetworkAccess: publicNetworkAccess ? 'Enabled' : 'Disabled'
    restrictOutboundNetworkAccess: 'Disabled'
    // Read at creation only: a server without a SQL login cannot be created unless Entra-only is set here. On
    // later PUTs ARM ignores azureADOnlyAuthentication in this block (or refuses a change); the child resource
    // `entraOnly` below is the documented way to keep it on.
    administrators: {
      administratorType: 'ActiveDirectory'
      azureADOnlyAuthentication: true
      login: entraAdminLogin
      sid: entraAdminObjectId
      principalType: entraAdminPrincipalType
      tenantId: tenant().tenantId
    }
  }

  resource database 'databases' = {
    name: databaseName
    location: location
    tags: tags
    sku: databaseSku
    properties: {
      collation: 'SQL_Latin1_General_CP1_CI_AS'
      requestedBackupStorageRedundancy: 'Local'
    }
  }

  resource entraOnly 'azureADOnlyAuthentications' = {
    name: 'Default'
    properties: {
      azureADOnlyAuthentication: true
    }
  }

  // Server-wide audit (logins, failed logins, batches) to Azure Monitor: the master database's diagnostic
  // setting below carries the SQLSecurityAuditEvents category to Log Analytics.
  resource auditing 'auditingSettings' = {
    name: 'default'
    properties: {
      state: 'Enabled'
      isAzureMonitorTargetEnabled: true
      auditActionsAndGroups: [
        'SUCCESSFUL_DATABASE_AUTHENTICATION_GROUP'
        'FAILED_DATABASE_AUTHENTICATION_GROUP'
        'BATCH_COMPLETED_GROUP'
      ]
    }
  }

  resource master 'databases' existing = {
    name: 'master'
  }

  resource deployerClientIp 'firewallRules' = if (publicNetworkAccess && !empty(clientIpAddress)) {
    name: 'AllowDeployerClientIp'
    properties: {
      startIpAddress: clientIpAddress
      endIpAddress: clientIpAddress
    }
  }

  // The special 0.0.0.0 rule: connections from Azure services only (still Entra-authenticated).
  resource allowAllAzureServices 'firewallRules' = if (publicNetworkAccess && allowAzureServices) {
    name: 'AllowAllWindowsAzureIps'
    properties: {
      startIpAddress: '0.0.0.0'
      endIpAddress: '0.0.0.0'
    }
  }
}

resource databaseDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: server::database
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Basic'
        enabled: true
      }
    ]
  }
}

resource auditDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: server::master
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'SQLSecurityAuditEvents'
        enabled: true
      }
    ]
  }
  dependsOn: [
    server::auditing
  ]
}

output name string = server.name
output id string = server.id
output fullyQualifiedDomainName string = server.properties.fullyQualifiedDomainName
output databaseName string = server::database.name
