/**
 * Masking rules: data in the registry (a database's policy), carried to the runner in the job message and
 * validated by this schema on both sides. A rule set is versioned: the job record says which version produced
 * a sanitized copy. See docs/sanitization.md.
 */
import { z } from 'zod';

/** A table or column name as the database spells it; quoted by the runner, never spliced in raw. */
const identifier = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');

const tableRef = {
  /** Default: `public` on PostgreSQL, `dbo` on SQL Server. */
  schema: identifier.optional(),
  table: identifier,
};

const columnRef = { ...tableRef, column: identifier };

export const ColumnMaskingRule = z.discriminatedUnion('strategy', [
  z.object({ ...columnRef, strategy: z.literal('null') }).strict(),
  z.object({ ...columnRef, strategy: z.literal('fixed'), value: z.union([z.string().max(4000), z.number()]) }).strict(),
  /** Keyed HMAC-SHA256 (hex), key random per copy: equal inputs stay equal inside one copy, so joins line up. */
  z.object({ ...columnRef, strategy: z.literal('hash') }).strict(),
  /** `user_<hmac>@example.invalid`, deterministic per input within one copy. */
  z.object({ ...columnRef, strategy: z.literal('email') }).strict(),
  /** A realistic first and last name chosen by the input's HMAC. */
  z.object({ ...columnRef, strategy: z.literal('name') }).strict(),
]);
export type ColumnMaskingRule = z.infer<typeof ColumnMaskingRule>;

export const TableMaskingRule = z.discriminatedUnion('strategy', [
  z.object({ ...tableRef, strategy: z.literal('truncate') }).strict(),
  /** Keep the table's definition, ship none of its rows (PostgreSQL: `pg_dump --exclude-table-data`). */
  z.object({ ...tableRef, strategy: z.literal('excludeData') }).strict(),
]);
export type TableMaskingRule = z.infer<typeof TableMaskingRule>;

export const MaskingRule = z.union([ColumnMaskingRule, TableMaskingRule]);
export type MaskingRule = z.infer<typeof MaskingRule>;

export const defaultSensitivePatterns = ['password', 'secret', 'token', 'salt', 'ssn', 'iban', 'card', 'email', 'phone'] as const;

export const MaskingRuleSet = z
  .object({
    /** Raise it with every change: the job record names the version that produced a copy. */
    version: z.number().int().positive(),
    rules: z.array(MaskingRule).max(1000).default([]),
    /** Run after the rules, in the same transaction; one failing statement fails the copy. */
    sql: z.array(z.string().trim().min(1).max(8000)).max(50).default([]),
    /** Case-insensitive substrings of column names that must be covered by a rule, or the copy fails. */
    sensitivePatterns: z
      .array(z.string().trim().min(1).max(64).regex(/^[A-Za-z0-9_]+$/, 'must be letters, digits or _'))
      .max(100)
      .default([...defaultSensitivePatterns]),
  })
  .strict()
  .superRefine((set, ctx) => {
    const seen = new Set<string>();
    set.rules.forEach((rule, index) => {
      const key = JSON.stringify([rule.schema ?? '', rule.table, 'column' in rule ? rule.column : '']);
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['rules', index], message: 'duplicates an earlier rule for the same table/column' });
      seen.add(key);
    });
  });
export type MaskingRuleSet = z.output<typeof MaskingRuleSet>;

export function isColumnRule(rule: MaskingRule): rule is ColumnMaskingRule {
  return 'column' in rule;
}

/** True when the rules only drop table data: PostgreSQL can then dump with `--exclude-table-data`, no scratch. */
export function onlyExcludesData(set: MaskingRuleSet): boolean {
  return set.sql.length === 0 && set.rules.length > 0 && set.rules.every((rule) => rule.strategy === 'excludeData');
}
