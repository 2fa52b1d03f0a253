/**
 * Checks a generated T-SQL statement with node-sql-parser, working around two gaps of its TransactSQL grammar
 * the same way test/shared/db/mssql.tsql.test.ts does for OUTPUT: check the part it cannot read against its exact
 * shape, then parse the rest. The gaps (canary tests fail once the parser learns them):
 *   - a bracket identifier with an escaped `]` (`[a]]b]`) does not parse: we tokenize bracket identifiers
 *     ourselves (proving each ends where we meant it to), return their names, and parse with placeholders;
 *   - RESTORE, ALTER DATABASE and DROP DATABASE are not in the grammar, nor is COUNT_BIG: those statements are
 *     matched against the one shape we generate.
 */
import sqlParser from 'node-sql-parser';

const parser = new sqlParser.Parser();
export const parseTsql = (text: string) => parser.astify(text, { database: 'TransactSQL' });

/** Bracket identifiers → `[idN]`, string literals → `'s'`; returns the identifiers' unescaped names. */
export function tokenizeIdentifiers(text: string): { text: string; identifiers: string[] } {
  const identifiers: string[] = [];
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === "'" || ((ch === 'N' || ch === 'n') && text[i + 1] === "'" && !/\w/.test(text[i - 1] ?? ''))) {
      let j = text.indexOf("'", i) + 1;
      let value = '';
      for (;;) {
        const end = text.indexOf("'", j);
        if (end < 0) throw new Error(`unterminated string literal in ${text}`);
        value += text.slice(j, end);
        if (text[end + 1] === "'") {
          value += "'";
          j = end + 2;
          continue;
        }
        i = end + 1;
        break;
      }
      out += `N'${value.replace(/[^A-Za-z0-9 @._+-]/g, 'x')}'`;
      continue;
    }
    if (ch === '[') {
      let j = i + 1;
      let name = '';
      for (;;) {
        const end = text.indexOf(']', j);
        if (end < 0) throw new Error(`unterminated identifier in ${text}`);
        name += text.slice(j, end);
        if (text[end + 1] === ']') {
          name += ']';
          j = end + 2;
          continue;
        }
        i = end + 1;
        break;
      }
      out += `[id${identifiers.length}]`;
      identifiers.push(name);
      continue;
    }
    out += ch;
    i += 1;
  }
  return { text: out, identifiers };
}

const unparseableShapes = [
  /^RESTORE FILELISTONLY FROM DISK = @path$/,
  /^RESTORE VERIFYONLY FROM DISK = @path WITH CHECKSUM$/,
  /^RESTORE DATABASE \[id0\] FROM DISK = @path WITH (MOVE @logical\d+ TO @physical\d+, )+CHECKSUM, RECOVERY, STATS = 10$/,
  /^IF DB_ID\(@name\) IS NOT NULL BEGIN ALTER DATABASE \[id0\] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE \[id1\]; END$/,
  /^BACKUP DATABASE \[id0\] TO DISK = @path WITH COPY_ONLY, (COMPRESSION, )?CHECKSUM, STATS = 5$/,
];

/** Throws unless the statement is T-SQL; returns the identifiers it names. */
export function assertTsql(statement: string): string[] {
  const { text, identifiers } = tokenizeIdentifiers(statement);
  if (unparseableShapes.some((shape) => shape.test(text))) return identifiers;
  parseTsql(text.replace(/COUNT_BIG\(\*\)/g, 'COUNT(*)'));
  return identifiers;
}
