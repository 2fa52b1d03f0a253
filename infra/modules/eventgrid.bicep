// The Event Grid topic the notifier publishes CloudEvents to (services/notifications.ts). Local (key) auth is off:
// the Function App publishes with its managed identity (EventGrid Data Sender, granted in alerts.bicep).

@description('Region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Event Grid topic name.')
param name string

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

output name string = topic.name
output endpoint string = topic.properties.endpoint
