/**
 * CSV as RFC 4180 describes it (CRLF line ends; fields with a comma, quote, CR or LF quoted, quotes doubled),
 * safe to open in a spreadsheet: a cell that starts like a formula (= + - @, or a tab/CR that some
 * spreadsheets skip) gets a leading apostrophe so it is shown as text, never evaluated (OWASP "CSV injection").
 */
const formulaStart = /^[=+\-@\t\r]/;
const needsQuoting = /[",\r\n]/;

export function csvCell(value: unknown): string {
  let text = value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  if (formulaStart.test(text)) text = `'${text}`;
  return needsQuoting.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A header row, then one row per item; `columns` maps a column name to how to read it from an item. */
export function toCsv<T>(items: readonly T[], columns: ReadonlyArray<readonly [string, (item: T) => unknown]>): string {
  const lines = [columns.map(([name]) => csvCell(name)).join(',')];
  for (const item of items) lines.push(columns.map(([, read]) => csvCell(read(item))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
