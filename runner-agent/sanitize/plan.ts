/**
 * Turns a rule set into a plan against the scratch database's catalog, failing closed before any data moves:
 * every rule must name a table/column that exists (with a type its strategy can write), and every column whose
 * name matches a sensitive pattern must be covered by a rule on it or on its table.
 */
import { type ColumnMaskingRule, type MaskingRuleSet, type TableMaskingRule, isColumnRule } from '../../shared/contracts/masking.js';
import { JobFailure } from '../errors.js';
import type { CatalogColumn } from './types.js';

export interface PlannedColumn {
  column: CatalogColumn;
  rule: ColumnMaskingRule;
}

export interface PlannedTable {
  schema: string;
  table: string;
  strategy: TableMaskingRule['strategy'];
}

export interface MaskingPlan {
  columns: PlannedColumn[];
  tables: PlannedTable[];
  sql: string[];
}

/** Types the text-producing strategies (hash, email, name) can write into. */
const TEXT_TYPES = new Set(['text', 'character varying', 'character', 'citext', 'varchar', 'nvarchar', 'char', 'nchar']);
/** `user_` + 12 hex + `@example.invalid`. */
export const FAKE_EMAIL_LENGTH = 33;

export const qualified = (schema: string, table: string, column?: string) =>
  [schema, table, ...(column === undefined ? [] : [column])].map((part) => JSON.stringify(part)).join('.');

export function planMasking(rules: MaskingRuleSet, catalog: CatalogColumn[], defaultSchema: string): MaskingPlan {
  const byTable = new Map<string, CatalogColumn[]>();
  for (const column of catalog) {
    const key = qualified(column.schema, column.table);
    byTable.set(key, [...(byTable.get(key) ?? []), column]);
  }
  const problems: string[] = [];
  const plan: MaskingPlan = { columns: [], tables: [], sql: rules.sql };
  for (const rule of rules.rules) {
    const schema = rule.schema ?? defaultSchema;
    const tableColumns = byTable.get(qualified(schema, rule.table));
    if (!tableColumns) {
      problems.push(`rule for ${qualified(schema, rule.table)}: no such table`);
      continue;
    }
    if (!isColumnRule(rule)) {
      plan.tables.push({ schema, table: rule.table, strategy: rule.strategy });
      continue;
    }
    const column = tableColumns.find((c) => c.column === rule.column);
    if (!column) {
      problems.push(`rule for ${qualified(schema, rule.table, rule.column)}: no such column`);
      continue;
    }
    const writesText = rule.strategy === 'hash' || rule.strategy === 'email' || rule.strategy === 'name';
    if (writesText && !TEXT_TYPES.has(column.dataType)) {
      problems.push(`rule for ${qualified(schema, rule.table, rule.column)}: strategy ${rule.strategy} needs a text column, not ${column.dataType}`);
      continue;
    }
    if (rule.strategy === 'email' && column.maxLength !== null && column.maxLength >= 0 && column.maxLength < FAKE_EMAIL_LENGTH) {
      problems.push(`rule for ${qualified(schema, rule.table, rule.column)}: email needs ${FAKE_EMAIL_LENGTH} characters, the column has ${column.maxLength}`);
      continue;
    }
    plan.columns.push({ column, rule });
  }
  if (problems.length > 0) throw new JobFailure('masking_rule_invalid', `The masking rules do not fit the database: ${problems.join('; ')}`);

  const emptied = new Set(plan.tables.map((t) => qualified(t.schema, t.table)));
  const masked = new Set(plan.columns.map((c) => qualified(c.column.schema, c.column.table, c.column.column)));
  const patterns = rules.sensitivePatterns.map((p) => p.toLowerCase());
  const uncovered = catalog.filter(
    (c) =>
      patterns.some((p) => c.column.toLowerCase().includes(p)) &&
      !masked.has(qualified(c.schema, c.table, c.column)) &&
      !emptied.has(qualified(c.schema, c.table)),
  );
  if (uncovered.length > 0) {
    throw new JobFailure(
      'sensitive_column_uncovered',
      `These columns match a sensitive pattern but no masking rule covers them: ${uncovered.map((c) => qualified(c.schema, c.table, c.column)).join(', ')}`,
    );
  }
  return plan;
}
