import { z } from 'zod';
import { parseRecipient } from '../age-keys.js';
import { isoDateTime, uuid } from './common.js';

/** An age X25519 public key, `age1…`, as `age-keygen -y key.txt` prints it. */
export const AgeRecipient = z
  .string()
  .trim()
  .superRefine((value, ctx) => {
    const parsed = parseRecipient(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.problem });
  });

/** Fingerprint of a recipient (services/encryption.ts `recipientFingerprint`): 16 hex characters. */
export const RecipientFingerprint = z.string().regex(/^[0-9a-f]{16}$/);

/** Per database: copies never encrypted, the requester's choice, or always encrypted. */
export const encryptionPolicies = ['none', 'optional', 'required'] as const;
export const EncryptionPolicy = z.enum(encryptionPolicies);
export type EncryptionPolicy = z.infer<typeof EncryptionPolicy>;

/**
 * How a copy is encrypted. `age`: to public-key recipients (age-encryption.org/v1). `dbde`: the retired
 * runner-key format, found only on copies made before age; never requested, never produced again.
 */
export const encryptionFormats = ['none', 'age', 'dbde'] as const;
export const EncryptionFormat = z.enum(encryptionFormats);
export type EncryptionFormat = z.infer<typeof EncryptionFormat>;

/** Why a recipient is on a copy: the requester's own key, the organisation's recovery key, the database policy. */
export const recipientRoles = ['requester', 'recovery', 'policy'] as const;
export const RecipientRole = z.enum(recipientRoles);

/** One recipient of a copy, as the job record keeps it (public keys only; nothing here is secret). */
export const CopyRecipient = z.object({ recipient: AgeRecipient, fingerprint: RecipientFingerprint, role: RecipientRole }).strict();
export type CopyRecipient = z.infer<typeof CopyRecipient>;

export const MAX_RECIPIENTS_PER_USER = 10;

export const PutRecipientsRequest = z
  .object({
    /** The caller's complete list; an empty list removes every registered key. */
    recipients: z
      .array(AgeRecipient)
      .max(MAX_RECIPIENTS_PER_USER)
      .refine((list) => new Set(list).size === list.length, 'must not list a recipient twice'),
  })
  .strict()
  .meta({ id: 'PutRecipientsRequest' });
export type PutRecipientsRequest = z.infer<typeof PutRecipientsRequest>;

export const MyRecipients = z
  .object({
    recipients: z.array(z.object({ recipient: z.string(), fingerprint: RecipientFingerprint, addedAt: isoDateTime })),
  })
  .meta({ id: 'MyRecipients' });
export type MyRecipients = z.infer<typeof MyRecipients>;

/** An Available copy whose recovery recipients have all been retired from settings: re-request it or let it expire. */
export const RetiredRecipientCopy = z
  .object({
    jobId: uuid,
    databaseId: uuid,
    databaseName: z.string(),
    expiresAt: isoDateTime.nullable(),
    recipients: z.array(z.object({ fingerprint: RecipientFingerprint, role: RecipientRole })),
    retiredFingerprints: z.array(RecipientFingerprint),
  })
  .meta({ id: 'RetiredRecipientCopy' });
export type RetiredRecipientCopy = z.infer<typeof RetiredRecipientCopy>;
