import { describe, expect, it } from 'vitest';
import { toJobRecord, type JobRow } from '../../../shared/db/rows.js';

const row = (options: string, encryptionRecipients: string | null = null): JobRow =>
  ({ id: 'j', options, encryptionRecipients }) as unknown as JobRow;

describe('job rows', () => {
  it('reads rows written before age: encryption true was the runner-key format (dbde), false none', () => {
    expect(toJobRecord(row('{"compression":"gzip","encryption":true}')).options).toEqual({ compression: 'gzip', encryption: 'dbde' });
    expect(toJobRecord(row('{"compression":"none","encryption":false}')).options).toEqual({ compression: 'none', encryption: 'none' });
    expect(toJobRecord(row('{"compression":"zstd","encryption":"age"}')).options.encryption).toBe('age');
  });

  it('reads the recipients of an age copy, and null for other copies', () => {
    const recipients = [{ recipient: 'age1x', fingerprint: '0123456789abcdef', role: 'recovery' }];
    expect(toJobRecord(row('{"compression":"none","encryption":"age"}', JSON.stringify(recipients))).encryptionRecipients).toEqual(recipients);
    expect(toJobRecord(row('{"compression":"none","encryption":"none"}')).encryptionRecipients).toBeNull();
  });
});
