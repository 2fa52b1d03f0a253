import { z } from 'zod';
import { BackupEngine, backupEngines, isoDateTime, uuid } from './common.js';
import { MaskingRuleSet } from './masking.js';

/** What copies of a database may be handed out: raw, only sanitized, or raw after an approver agrees. */
export const distributions = ['raw', 'sanitized', 'raw-needs-approval'] as const;
export const Distribution = z.enum(distributions);
export type Distribution = z.infer<typeof Distribution>;
import { AgeRecipient, EncryptionPolicy } from './encryption.js';
import { BackupOptions } from './jobs.js';

const name = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(128)
  // Printable, no control characters: names end up in T-SQL identifiers, blob paths and file names.
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters')
  // Bidi overrides make a name display as something else (`Sales\u202Egpj.exe`).
  .regex(
    /^[^\u202a-\u202e\u2066-\u2069]*$/,
    'must not contain bidirectional control characters (U+202A to U+202E, U+2066 to U+2069): they make a name display differently from what it is',
  );

/** A runner identity allowed to serve a server: its app registration's client id and service principal object id. */
export const RunnerBinding = z
  .object({
    clientId: uuid,
    servicePrincipalId: uuid,
  })
  .strict()
  .meta({ id: 'RunnerBinding' });
export type RunnerBinding = z.infer<typeof RunnerBinding>;

export const ServerInput = z
  .object({
    name,
    /** How the runner reaches the instance: `host`, `host\\instance`, or `host:port`. */
    host: z.string().trim().min(1).max(255),
    engine: BackupEngine,
    description: z.string().max(1000).optional(),
    /** Runners allowed to back up this server; a runner not listed gets 403 on the job's runner endpoints. */
    runners: z.array(RunnerBinding).max(20).optional(),
  })
  .strict()
  .meta({ id: 'ServerInput' });
export type ServerInput = z.infer<typeof ServerInput>;

export const ServerUpdate = ServerInput.partial().strict().meta({ id: 'ServerUpdate' });
export type ServerUpdate = z.infer<typeof ServerUpdate>;

export const ServerView = ServerInput.extend({
  id: uuid,
  description: z.string().nullable(),
  runners: z.array(RunnerBinding),
  createdAt: isoDateTime,
  updatedAt: isoDateTime,
}).meta({ id: 'Server' });
export type ServerView = z.infer<typeof ServerView>;

/** The policy's fields without their defaults, so that a partial update cannot fill in what it did not send. */
const databasePolicyFields = {
  maxSasTtlMinutes: z.number().int().positive().max(7 * 24 * 60),
  retentionDays: z.number().int().positive().max(3650),
  allowedEngines: z.array(BackupEngine).min(1),
  acceptTimeoutMinutes: z.number().int().positive().max(7 * 24 * 60),
  runTimeoutMinutes: z.number().int().positive().max(7 * 24 * 60),
  /** Links usable only with the Entra token of the person they were minted for (SAS `sduoid`). */
  bindLinksToRequester: z.boolean(),
  /** Days between re-verifications of an Available backup's stored bytes; 0 = never. */
  reverifyEveryDays: z.number().int().nonnegative().max(3650),
  /** Recovery point objective: the last good backup may be at most this old (optional; checked by a timer). */
  rpoHours: z.number().int().positive().max(24 * 366),
  /** How long a request may wait for approval before it is Rejected (`approval_timeout`). */
  approvalTimeoutHours: z.number().int().positive().max(24 * 90),
  distribution: Distribution,
  /** The masking rule set a sanitized copy is made with; required when distribution is `sanitized`. */
  masking: MaskingRuleSet.nullable(),
  /** Restore-rehearse the newest Available backup this often; null: only on request. */
  rehearseEveryDays: z.number().int().positive().max(3650).nullable(),
  encryption: EncryptionPolicy,
  /** Added to every encrypted copy of this database (e.g. the owning team's key). */
  encryptionRecipients: z.array(AgeRecipient).max(10),
};

const sanitizedNeedsRules = (policy: { distribution?: Distribution; masking?: MaskingRuleSet | null }) =>
  policy.distribution !== 'sanitized' || Boolean(policy.masking);
const sanitizedNeedsRulesMessage = { path: ['masking'], message: "is required when distribution is 'sanitized'" };

export const DatabasePolicy = z
  .object({
    maxSasTtlMinutes: databasePolicyFields.maxSasTtlMinutes.default(60),
    retentionDays: databasePolicyFields.retentionDays.default(7),
    allowedEngines: databasePolicyFields.allowedEngines.default([...backupEngines]),
    acceptTimeoutMinutes: databasePolicyFields.acceptTimeoutMinutes.default(60),
    runTimeoutMinutes: databasePolicyFields.runTimeoutMinutes.default(12 * 60),
    bindLinksToRequester: databasePolicyFields.bindLinksToRequester.default(false),
    reverifyEveryDays: databasePolicyFields.reverifyEveryDays.default(7),
    rpoHours: databasePolicyFields.rpoHours.optional(),
    distribution: databasePolicyFields.distribution.default('raw'),
    approvalTimeoutHours: databasePolicyFields.approvalTimeoutHours.default(72),
    masking: databasePolicyFields.masking.default(null),
    rehearseEveryDays: databasePolicyFields.rehearseEveryDays.default(null),
    encryption: databasePolicyFields.encryption.default('optional'),
    encryptionRecipients: databasePolicyFields.encryptionRecipients.default([]),
  })
  .strict()
  .refine(sanitizedNeedsRules, sanitizedNeedsRulesMessage);

/**
 * A partial policy for updates. Not `DatabasePolicy.partial()`: zod 4 still applies the defaults inside it,
 * which would reset every field the caller left out.
 */
export const DatabasePolicyPatch = z.object(databasePolicyFields).partial().strict();
export type DatabasePolicy = z.infer<typeof DatabasePolicy>;

export const defaultDatabasePolicy: DatabasePolicy = DatabasePolicy.parse({});

export const DatabaseSchedule = z
  .object({
    /** Five-field cron expression, evaluated in UTC (e.g. `0 3 * * *` for 03:00 daily). */
    cron: z.string().trim().min(9).max(100),
    /** Options of every scheduled job. */
    options: BackupOptions.default({ compression: 'none', encryption: 'none' }),
    /** Entra group whose members may read and download this schedule's backups (Admins always may). */
    recipientGroupId: uuid.nullable().default(null),
  })
  .strict();
export type DatabaseSchedule = z.infer<typeof DatabaseSchedule>;

export const DatabaseInput = z
  .object({
    name,
    /** Entra group object ids whose members may request backups of this database. */
    requesterGroupIds: z.array(uuid).default([]),
    policy: DatabasePolicy.default(defaultDatabasePolicy),
    schedule: DatabaseSchedule.nullable().default(null),
    enabled: z.boolean().default(true),
  })
  .strict()
  .meta({ id: 'DatabaseInput' });
export type DatabaseInput = z.infer<typeof DatabaseInput>;

export const DatabaseUpdate = z
  .object({
    name: name.optional(),
    requesterGroupIds: z.array(uuid).optional(),
    policy: DatabasePolicyPatch.optional(),
    schedule: DatabaseSchedule.nullable().optional(),
    enabled: z.boolean().optional(),
  })
  .strict()
  .meta({ id: 'DatabaseUpdate' });
export type DatabaseUpdate = z.infer<typeof DatabaseUpdate>;

/** How recoverable the database is now: its last good backup against the RPO. */
export const DatabaseRecovery = z
  .object({
    lastGoodBackupAt: isoDateTime.nullable(),
    rpoHours: z.number().nullable(),
    /** Since when the RPO is breached; null while the last good backup is recent enough (or no RPO is set). */
    rpoBreachedSince: isoDateTime.nullable(),
  })
  .meta({ id: 'DatabaseRecovery' });
export type DatabaseRecovery = z.infer<typeof DatabaseRecovery>;

export const DatabaseView = z
  .object({
    id: uuid,
    serverId: uuid,
    name: z.string(),
    requesterGroupIds: z.array(uuid),
    policy: DatabasePolicy,
    schedule: DatabaseSchedule.nullable(),
    enabled: z.boolean(),
    /** On the single-database read only. */
    recovery: DatabaseRecovery.optional(),
    createdAt: isoDateTime,
    updatedAt: isoDateTime,
  })
  .meta({ id: 'Database' });
export type DatabaseView = z.infer<typeof DatabaseView>;

/** A database as a Requester sees it: what they may ask for and the policy that shapes their request. */
export const RequestableDatabaseView = z
  .object({
    id: uuid,
    serverId: uuid,
    name: z.string(),
    engine: BackupEngine,
    // From the fields, not DatabasePolicy: zod 4 refuses .pick() on a refined object. Requesters see whether they need approval.
    policy: z.object({
      allowedEngines: databasePolicyFields.allowedEngines,
      maxSasTtlMinutes: databasePolicyFields.maxSasTtlMinutes,
      retentionDays: databasePolicyFields.retentionDays,
      bindLinksToRequester: databasePolicyFields.bindLinksToRequester,
      distribution: databasePolicyFields.distribution,
    }),
  })
  .meta({ id: 'RequestableDatabase' });
export type RequestableDatabaseView = z.infer<typeof RequestableDatabaseView>;
