// Types shared by main.bicep and its modules (compile-time import).

@export()
@description('A runner agent\'s Service Bus subscription on the jobs topic.')
type runnerSubscription = {
  @description('Subscription name, e.g. "runner-dc1" (1-50 letters, digits, ".", "-", "_").')
  @minLength(1)
  @maxLength(50)
  name: string

  @description('dbdist server ids (GUIDs from POST /api/servers) whose jobs this runner takes.')
  @minLength(1)
  serverIds: string[]

  @description('Object id of the runner app registration\'s service principal (Enterprise application), not its client id.')
  principalId: string
}
