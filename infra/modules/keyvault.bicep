// The manifest signing key: an EC P-256 key in a Key Vault with RBAC authorization. The Function App may sign
// with it and read its public versions (for the JWKS), nothing else: no built-in role is sign-only ("Key Vault
// Crypto User" also decrypts, unwraps and more), so a custom role grants exactly the two data actions.

@description('Key Vault name (3-24 characters).')
param name string

param location string
param tags object = {}

@description('Name of the manifest signing key.')
param keyName string = 'manifest-signing'

@description('Object id of the Function App\'s system-assigned identity.')
param principalId string

@description('Days after which Key Vault rotates the key (a new version signs; older versions stay published while needed).')
param rotateAfterDays int = 180

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Azure RBAC on the data plane; no access policies.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // A signing key that can be purged would take every manifest's proof with it.
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

resource signingKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
  parent: vault
  name: keyName
  properties: {
    kty: 'EC'
    curveName: 'P-256'
    keyOps: [
      'sign'
      'verify'
    ]
    rotationPolicy: {
      attributes: {
        expiryTime: 'P2Y'
      }
      lifetimeActions: [
        {
          trigger: {
            timeAfterCreate: 'P${rotateAfterDays}D'
          }
          action: {
            type: 'rotate'
          }
        }
      ]
    }
  }
}

// Sign, and read keys (public material and versions); not decrypt, unwrap, create, delete or purge.
resource signerRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'dbdist-manifest-signer')
  properties: {
    roleName: 'dbdist manifest signer (${resourceGroup().name})'
    description: 'Sign with Key Vault keys and read their public parts. Used by the dbdist Function App to sign backup manifests.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.KeyVault/vaults/keys/sign/action'
          'Microsoft.KeyVault/vaults/keys/read'
        ]
        notDataActions: []
      }
    ]
  }
}

// On the one key, not the vault.
resource signerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(signingKey.id, principalId, signerRole.id)
  scope: signingKey
  properties: {
    roleDefinitionId: signerRole.id
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Versionless key id: the newest version signs.')
output keyId string = '${vault.properties.vaultUri}keys/${keyName}'
output name string = vault.name
