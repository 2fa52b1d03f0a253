import { describe, expect, it } from 'vitest';
import { csvCell, toCsv } from '../../services/csv.js';

describe('csvCell', () => {
  it('quotes commas, quotes and line breaks as RFC 4180 says, doubling inner quotes', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\r\nlines')).toBe('"two\r\nlines"');
  });

  it('neutralises cells a spreadsheet would evaluate as formulas', () => {
    for (const formula of ['=HYPERLINK("http://x")', '+1+1', '-2+3', '@SUM(A1)', '\t=1', '\r=1']) {
      const cell = csvCell(formula);
      expect(cell.replace(/^"/, '').startsWith("'"), `${JSON.stringify(formula)} → ${cell}`).toBe(true);
    }
    expect(csvCell('=A1,B1')).toBe(`"'=A1,B1"`);
  });

  it('writes null as empty and objects as JSON', () => {
    expect(csvCell(null)).toBe('');
    expect(csvCell({ a: 1 })).toBe('"{""a"":1}"');
  });
});

describe('toCsv', () => {
  it('writes a header row and CRLF-terminated rows', () => {
    const csv = toCsv([{ n: 'x', v: 1 }, { n: 'y,z', v: 2 }], [['name', (r) => r.n], ['value', (r) => r.v]]);
    expect(csv).toBe('name,value\r\nx,1\r\n"y,z",2\r\n');
  });
});
