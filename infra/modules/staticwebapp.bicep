// The portal: a Static Web App holding the built SPA (azd deploys portal/dist to it, service `portal`).
// Static Web Apps rather than the Function App: Flex Consumption has no static file hosting, and serving the
// page from the API's own origin would hide CORS problems the portal must not have.

@description('Static Web App name.')
param name string

@description('Region; Static Web Apps run in a few regions only (westeurope, westus2, centralus, eastus2, eastasia).')
param location string

@description('Tags; the app also gets azd-service-name: portal.')
param tags object = {}

@description('Free is enough for a static SPA; Standard adds an SLA, custom auth and private endpoints.')
@allowed([
  'Free'
  'Standard'
])
param sku string = 'Free'

resource portal 'Microsoft.Web/staticSites@2023-12-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'portal' })
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    // azd uploads the built files; no repository build.
    provider: 'None'
    allowConfigFileUpdates: true
    stagingEnvironmentPolicy: 'Disabled'
  }
}

output name string = portal.name
output defaultHostname string = portal.properties.defaultHostname
output origin string = 'https://${portal.properties.defaultHostname}'
