// What the Function App's managed identity may do, and nothing more. Role definition ids are Azure built-in
// roles; assignment names are guid(scope, principal, role) so a redeployment finds the same assignment.

@description('Object id of the Function App\'s system-assigned identity.')
param principalId string

@description('Backup storage account name.')
param backupStorageName string

@description('Backup container name.')
param backupContainerName string

@description('Host storage account name (Functions host, Durable task hub, deployment package).')
param hostStorageName string

@description('Service Bus namespace name.')
param serviceBusName string

@description('Jobs topic name.')
param serviceBusTopicName string

@description('The runners\' subscriptions on the jobs topic: the control plane reads their dead-letter queues.')
param serviceBusRunnerSubscriptions string[]

@description('Application Insights component name.')
param applicationInsightsName string

var roleIds = {
  // Storage Blob Data Contributor: read, write, delete backup blobs and set their metadata.
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  // Storage Blob Delegator: get the user delegation key that signs the runner's and downloaders' SAS.
  storageBlobDelegator: 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'
  // Storage Blob Data Owner: Functions host and Durable task hub (blob leases) and the Flex deployment package.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Storage Queue Data Contributor: Durable control and work-item queues.
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Storage Table Data Contributor: Durable history and instances tables.
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Azure Service Bus Data Sender: enqueue job messages.
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  // Azure Service Bus Data Receiver: read (and complete) the runner subscriptions' dead letters.
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  // Monitoring Metrics Publisher: Entra-authenticated Application Insights ingestion.
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var hostStorageRoleIds = [
  roleIds.storageBlobDataOwner
  roleIds.storageQueueDataContributor
  roleIds.storageTableDataContributor
]

resource backupStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: backupStorageName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource container 'containers' existing = {
      name: backupContainerName
    }
  }
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusName

  resource topic 'topics' existing = {
    name: serviceBusTopicName
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Data access only on the backup container, not the whole account.
resource backupBlobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(backupStorage::blobService::container.id, principalId, roleIds.storageBlobDataContributor)
  scope: backupStorage::blobService::container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// A user delegation key is an account-level operation, so this one is on the account.
resource backupDelegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(backupStorage.id, principalId, roleIds.storageBlobDelegator)
  scope: backupStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDelegator)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource hostStorageData 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in hostStorageRoleIds: {
    name: guid(hostStorage.id, principalId, roleId)
    scope: hostStorage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Send only, and only to the jobs topic.
resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBus::topic.id, principalId, roleIds.serviceBusDataSender)
  scope: serviceBus::topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Receive on each runner subscription (no narrower built-in role reaches a dead-letter queue); nothing on the
// topic or namespace, so no other entity's messages.
resource runnerSubscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' existing = [
  for subscriptionName in serviceBusRunnerSubscriptions: {
    parent: serviceBus::topic
    name: subscriptionName
  }
]

resource deadLetterReaders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (subscriptionName, i) in serviceBusRunnerSubscriptions: {
    name: guid(runnerSubscriptions[i].id, principalId, roleIds.serviceBusDataReceiver)
    scope: runnerSubscriptions[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataReceiver)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, roleIds.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
