/** Encryption recipients: a requester's own age public keys, and (Admin) copies left on a retired recovery key. */
import { MyRecipients, PutRecipientsRequest } from '../shared/contracts/encryption.js';
import { RetiredRecipientCopyList } from '../shared/openapi.js';
import * as encryption from '../services/encryption.js';
import { endpoint } from './endpoint.js';
import { httpRoute } from './registry.js';
import { ok } from './responses.js';

export const getMyRecipients = endpoint({
  summary: "The caller's registered age public keys (encrypted copies they request are encrypted to these)",
  access: { anyOf: ['Requester', 'Admin'] },
  responses: [{ status: 200, description: 'The registered keys, oldest first', schema: MyRecipients }],
  async handle({ scope }) {
    return ok(await encryption.listMyRecipients(scope));
  },
});

export const putMyRecipients = endpoint({
  summary: "Replace the caller's age public keys (age1…, from `age-keygen -y key.txt`); an empty list removes them",
  access: { anyOf: ['Requester', 'Admin'] },
  body: PutRecipientsRequest,
  responses: [{ status: 200, description: 'The keys now registered', schema: MyRecipients }],
  async handle({ scope, body }) {
    return ok(await encryption.replaceMyRecipients(scope, body));
  },
});

export const listRetiredRecipientCopies = endpoint({
  summary: 'Available copies whose recovery recipients have all been retired from ENCRYPTION_RECOVERY_RECIPIENTS (Admin)',
  access: { anyOf: ['Admin'] },
  responses: [{ status: 200, description: 'Every such copy, newest first', schema: RetiredRecipientCopyList }],
  async handle({ scope }) {
    return ok(await encryption.listRetiredRecipientCopies(scope));
  },
});

httpRoute({ name: 'me-recipients-get', route: 'me/recipients', methods: ['GET'], handler: getMyRecipients });
httpRoute({ name: 'me-recipients-put', route: 'me/recipients', methods: ['PUT'], handler: putMyRecipients });
httpRoute({ name: 'recipients-retired-copies', route: 'recipients/retired-copies', methods: ['GET'], handler: listRetiredRecipientCopies });
