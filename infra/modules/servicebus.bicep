// Service Bus namespace with the jobs topic and one filtered subscription per runner agent.
// Standard tier is enough (topics, duplicate detection, SQL filters); local (SAS key) auth is off: the
// Function App sends with its managed identity, each runner receives with its app registration + certificate.

import { runnerSubscription } from '../types.bicep'

@description('Namespace name (globally unique).')
param name string

@description('Region of the namespace.')
param location string

@description('Tags applied to the namespace.')
param tags object

@description('Jobs topic name.')
param topicName string

@description('One subscription per runner agent, filtered on the serverId application property.')
param runnerSubscriptions runnerSubscription[]

@description('Window in which a re-sent message with the same messageId (the job id) is dropped.')
param duplicateDetectionWindow string = 'PT1H'

@description('A job message nobody receives within this time is dead-lettered (ISO 8601 duration).')
param messageTimeToLive string = 'P1D'

@description('Deliveries before a message the runner keeps failing on is dead-lettered.')
@minValue(1)
@maxValue(100)
param maxDeliveryCount int = 5

@description('Log Analytics workspace (resource id) for the namespace\'s diagnostics.')
param logAnalyticsWorkspaceId string

// Azure Service Bus Data Receiver (built-in role).
var serviceBusDataReceiverRoleId = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }

  resource topic 'topics' = {
    name: topicName
    properties: {
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
      defaultMessageTimeToLive: messageTimeToLive
      enableBatchedOperations: true
      maxSizeInMegabytes: 1024
    }
  }
}

resource subscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = [
  for runner in runnerSubscriptions: {
    parent: namespace::topic
    name: runner.name
    properties: {
      maxDeliveryCount: maxDeliveryCount
      // The runner renews the lock while a backup runs; 5 minutes is the maximum.
      lockDuration: 'PT5M'
      defaultMessageTimeToLive: messageTimeToLive
      deadLetteringOnMessageExpiration: true
      deadLetteringOnFilterEvaluationExceptions: true
      enableBatchedOperations: true
    }
  }
]

// Every subscription is born with a `$Default` rule whose TrueFilter lets every message in. The template updates
// that rule in place (a PUT on `$Default` replaces its filter), so the subscription has exactly one rule, the
// serverId filter, and nothing depends on how Service Bus would combine several rules.
// Ids are quoted as SQL string literals (quotes doubled), e.g. serverId IN ('0b1…', '7f3…').
resource serverFilters 'Microsoft.ServiceBus/namespaces/topics/subscriptions/rules@2022-10-01-preview' = [
  for (runner, i) in runnerSubscriptions: {
    parent: subscriptions[i]
    name: '$Default'
    properties: {
      filterType: 'SqlFilter'
      sqlFilter: {
        sqlExpression: 'serverId IN (${join(map(runner.serverIds, id => '\'${replace(id, '\'', '\'\'')}\''), ', ')})'
      }
    }
  }
]

// Each runner may receive from ITS subscription only: the role is scoped to the subscription, not the topic.
resource runnerReceivers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (runner, i) in runnerSubscriptions: {
    name: guid(subscriptions[i].id, runner.principalId, serviceBusDataReceiverRoleId)
    scope: subscriptions[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
      principalId: runner.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: namespace
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
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output name string = namespace.name
// serviceBusEndpoint is https://<name>.servicebus.windows.net:443/ (other suffix in sovereign clouds): keep the host.
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output topicName string = namespace::topic.name
output subscriptionNames string[] = [for runner in runnerSubscriptions: runner.name]
