import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatRecipient, parseIdentity, parseRecipient } from '../../../shared/age-keys.js';
import { createAgeDecryptStream, createAgeEncryptStream, generateAgeIdentity, readIdentityFile } from '../../../runner-agent/pipeline/age.js';
import { ageCliAvailable } from '../../support/age-cli.js';
import { through } from '../helpers.js';

const CHUNK = 64 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'dbdist-age-'));
const alice = generateAgeIdentity();
const bob = generateAgeIdentity();

const encrypt = (plain: Buffer | Buffer[], recipients = [alice.recipient]) => through(plain, createAgeEncryptStream(recipients));
const decrypt = (sealed: Buffer | Buffer[], identities = [alice.identity]) => through(sealed, createAgeDecryptStream(identities));

/** Runs Debian's `age` CLI; the file given on stdin, the output returned. */
function ageCli(args: string[], input: Buffer): { status: number | null; stdout: Buffer; stderr: string } {
  const result = spawnSync('age', args, { input, maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

function keyFile(identity: string): string {
  const path = join(dir, `${randomBytes(4).toString('hex')}.txt`);
  writeFileSync(path, `# created: by a test\n${identity}\n`);
  return path;
}

describe('age keys', () => {
  it.skipIf(!ageCliAvailable)('round-trips recipients and identities and agrees with age-keygen', () => {
    const path = join(dir, 'keygen.txt');
    execFileSync('age-keygen', ['-o', path], { stdio: 'ignore' });
    const [identity] = readIdentityFile(path);
    const recipient = execFileSync('age-keygen', ['-y', path]).toString().trim();
    const parsed = parseRecipient(recipient);
    expect(parsed.ok && formatRecipient(parsed.key)).toBe(recipient);
    expect(parseIdentity(identity!).ok).toBe(true);
  });

  it.each([
    ['age1qqqq', /checksum/],
    [alice.recipient.slice(0, -1) + (alice.recipient.endsWith('q') ? 'p' : 'q'), /checksum/],
    [alice.recipient.toUpperCase(), /lower case/],
    ['ssh-ed25519 AAAA', /age1/],
    [alice.identity, /age1/],
  ])('refuses %s as a recipient', (text, problem) => {
    const parsed = parseRecipient(text);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.problem).toMatch(problem);
  });
});

describe('age encryption (native ChaCha20-Poly1305)', () => {
  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17])('round-trips %i bytes', async (size) => {
    const plain = randomBytes(size);
    const sealed = await encrypt(plain);
    expect(sealed.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    expect((await decrypt(sealed)).equals(plain)).toBe(true);
  });

  it('round-trips whatever the write sizes on either side, and every recipient can open it', async () => {
    const plain = randomBytes(5 * CHUNK + 300);
    const pieces = [plain.subarray(0, 5), plain.subarray(5, CHUNK), plain.subarray(CHUNK, CHUNK + 1), plain.subarray(CHUNK + 1)];
    const sealed = await encrypt(pieces, [alice.recipient, bob.recipient]);
    const sealedPieces = [sealed.subarray(0, 3), sealed.subarray(3, 200), sealed.subarray(200, 70_000), sealed.subarray(70_000)];
    expect((await decrypt(sealedPieces)).equals(plain)).toBe(true);
    expect((await decrypt(sealed, [bob.identity])).equals(plain)).toBe(true);
  });

  it('uses a fresh file key per copy: the same plaintext encrypts differently', async () => {
    const plain = randomBytes(100);
    expect((await encrypt(plain)).equals(await encrypt(plain))).toBe(false);
  });

  it.skipIf(!ageCliAvailable)('writes files the age CLI opens, at chunk boundaries and across several chunks', async () => {
    for (const size of [0, CHUNK, 2 * CHUNK + 5]) {
      const plain = randomBytes(size);
      const sealed = await encrypt(plain, [bob.recipient, alice.recipient]);
      const opened = ageCli(['-d', '-i', keyFile(alice.identity)], sealed);
      expect(opened.stderr).toBe('');
      expect(opened.stdout.equals(plain)).toBe(true);
    }
  });

  it.skipIf(!ageCliAvailable)('opens files the age CLI wrote (with its grease stanzas)', async () => {
    const plain = randomBytes(3 * CHUNK + 9);
    const sealed = ageCli(['-e', '-r', bob.recipient, '-r', alice.recipient], plain);
    expect(sealed.status).toBe(0);
    expect((await decrypt(sealed.stdout)).equals(plain)).toBe(true);
  });

  describe('fails clearly', () => {
    const plain = randomBytes(3 * CHUNK + 10);
    const sealedOnce = encrypt(plain);
    const headerEnd = async () => (await sealedOnce).indexOf('\n', (await sealedOnce).indexOf('\n---') + 1) + 1;

    it.skipIf(!ageCliAvailable)('with the wrong key, here and in the age CLI', async () => {
      const sealed = await sealedOnce;
      await expect(decrypt(sealed, [bob.identity])).rejects.toThrow(/no identity given matches any recipient/);
      const cli = ageCli(['-d', '-i', keyFile(bob.identity)], sealed);
      expect(cli.status).not.toBe(0);
      expect(cli.stderr).toMatch(/no identity matched any of the recipients/);
    });

    it.skipIf(!ageCliAvailable)('when the file is truncated, at a chunk boundary or inside a chunk', async () => {
      const sealed = await sealedOnce;
      const payloadStart = (await headerEnd()) + 16;
      for (const cut of [payloadStart + CHUNK + 16, payloadStart + 2 * (CHUNK + 16), sealed.length - 1, payloadStart + 10]) {
        await expect(decrypt(sealed.subarray(0, cut))).rejects.toThrow(/failed authentication/);
        expect(ageCli(['-d', '-i', keyFile(alice.identity)], sealed.subarray(0, cut)).status).not.toBe(0);
      }
      await expect(decrypt(sealed.subarray(0, payloadStart - 16))).rejects.toThrow(/truncated age file/);
    });

    it.skipIf(!ageCliAvailable)('when a payload byte or the header is edited', async () => {
      const sealed = await sealedOnce;
      const payloadByte = Buffer.from(sealed);
      payloadByte[(await headerEnd()) + 16 + CHUNK + 100]! ^= 1;
      await expect(decrypt(payloadByte)).rejects.toThrow(/chunk 1 failed authentication/);
      expect(ageCli(['-d', '-i', keyFile(alice.identity)], payloadByte).status).not.toBe(0);

      // A second stanza added to the header (someone granting themselves access) breaks the header MAC.
      const text = sealed.subarray(0, await headerEnd()).toString('latin1');
      const extra = (await encrypt(Buffer.alloc(1), [bob.recipient])).toString('latin1').split('\n').slice(1, 3).join('\n');
      const forged = Buffer.concat([Buffer.from(text.replace('\n---', `\n${extra}\n---`), 'latin1'), sealed.subarray(await headerEnd())]);
      await expect(decrypt(forged)).rejects.toThrow(/header failed authentication/);
    });

    it('when the file is not an age file', async () => {
      await expect(decrypt(Buffer.from('DBDE\x01 not age'))).rejects.toThrow(/not an age file/);
    });
  });

  it('reads age-keygen key files and names a bad line', () => {
    const bad = join(dir, 'bad.txt');
    writeFileSync(bad, '# comment\nAGE-SECRET-KEY-1NOTAKEY\n');
    expect(() => readIdentityFile(bad)).toThrow(/bad\.txt: a line is not an age identity/);
    expect(readFileSync(keyFile(alice.identity), 'utf8')).toContain(alice.identity);
  });
});
