// Alerting: the Function App's right to publish to the notifications topic (eventgrid.bicep), the action group
// operators are reached through, and the alert rules that use it.
// The notifier logs one line per domain event (`dbdist.event <type> <id>`, services/notifications.ts); the log
// alerts below count those lines, so they fire whether or not any notification channel is configured.

@description('Region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Event Grid topic name (created by eventgrid.bicep).')
param eventGridTopicName string

@description('Action group name.')
param actionGroupName string

@description('Object id of the Function App\'s system-assigned identity (publishes to the topic).')
param functionPrincipalId string

@description('Name of the Function App (its exceptions are alerted on).')
param functionAppName string

@description('Log Analytics workspace the Function App\'s telemetry goes to.')
param logAnalyticsWorkspaceId string

@description('Service Bus namespace name (dead-lettered job messages are alerted on).')
param serviceBusName string

@description('E-mail addresses the action group notifies.')
param alertEmails string[] = []

@description('Optional webhook (e.g. a Teams Workflows URL) the action group calls, common alert schema.')
param alertWebhookUrl string = ''

resource topic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: eventGridTopicName
}

// EventGrid Data Sender: publish events to the topic, nothing else.
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, functionPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'dbdist'
    enabled: true
    emailReceivers: [for (email, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
    webhookReceivers: empty(alertWebhookUrl) ? [] : [
      {
        name: 'webhook'
        serviceUri: alertWebhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

// One log alert per domain event worth waking someone for; each counts the notifier's lines in 5 minutes.
var eventAlerts = [
  { name: 'job-failed', type: 'dbdist.job.failed', severity: 2, description: 'A backup job failed.' }
  { name: 'job-dead-lettered', type: 'dbdist.job.dead_lettered', severity: 1, description: 'A job message was dead-lettered: no runner could take it.' }
  { name: 'integrity-failed', type: 'dbdist.integrity.failed', severity: 1, description: 'A stored backup failed re-verification (Corrupt).' }
  { name: 'rpo-breached', type: 'dbdist.rpo.breached', severity: 2, description: 'A database has no good backup within its RPO.' }
]

resource eventAlertRules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for alert in eventAlerts: {
  name: 'alert-${alert.name}-${functionAppName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'dbdist: ${alert.description}'
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [logAnalyticsWorkspaceId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: 'AppTraces | where AppRoleName =~ "${functionAppName}" and Message startswith "dbdist.event ${alert.type} "'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: false
    actions: { actionGroups: [actionGroup.id] }
  }
}]

resource functionErrors 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-function-errors-${functionAppName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'dbdist: Function errors'
    description: 'The Function App logged exceptions (unhandled errors, 5xx answers).'
    severity: 2
    enabled: true
    scopes: [logAnalyticsWorkspaceId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'AppExceptions | where AppRoleName =~ "${functionAppName}"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: { actionGroups: [actionGroup.id] }
  }
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusName
}

resource deadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-dead-letters-${serviceBusName}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Job messages are waiting in a dead-letter queue of the backup subscriptions.'
    severity: 1
    enabled: true
    scopes: [serviceBus.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered'
          metricName: 'DeadletteredMessages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    autoMitigate: true
    actions: [{ actionGroupId: actionGroup.id }]
  }
}

output actionGroupId string = actionGroup.id
