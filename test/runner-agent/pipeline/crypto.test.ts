import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDecryptStream, createEncryptStream, keyId, readKeyFile } from '../../../runner-agent/pipeline/crypto.js';
import { through } from '../helpers.js';

const key = randomBytes(32);
const chunkBytes = 1024;
const headerBytes = 4 + 1 + 4 + 1 + 16 + 8; // magic, version, chunk size, key id length, key id (16 hex), nonce prefix
const sealedChunk = chunkBytes + 16;

async function encrypt(plain: Buffer): Promise<Buffer> {
  return through(plain, createEncryptStream(key, { chunkBytes }));
}

async function decrypt(sealed: Buffer, withKey = key): Promise<Buffer> {
  return through(sealed, createDecryptStream(withKey));
}

/** The encrypted stream cut into header and sealed chunks. */
function split(sealed: Buffer): { header: Buffer; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  for (let at = headerBytes; at < sealed.length; at += sealedChunk) chunks.push(sealed.subarray(at, at + sealedChunk));
  return { header: sealed.subarray(0, headerBytes), chunks };
}

describe('chunked AES-256-GCM envelope', () => {
  it.each([0, 1, chunkBytes - 1, chunkBytes, chunkBytes + 1, 3 * chunkBytes, 5 * chunkBytes + 17])(
    'round-trips %i bytes',
    async (size) => {
      const plain = randomBytes(size);
      const sealed = await encrypt(plain);
      expect(sealed.length).toBe(headerBytes + Math.max(1, Math.ceil(size / chunkBytes)) * 16 + size);
      expect((await decrypt(sealed)).equals(plain)).toBe(true);
    },
  );

  it('round-trips whatever the write sizes on either side', async () => {
    const plain = randomBytes(7 * chunkBytes + 300);
    const pieces = [plain.subarray(0, 5), plain.subarray(5, 3000), plain.subarray(3000)];
    const sealed = await through(pieces, createEncryptStream(key, { chunkBytes }));
    const sealedPieces = [sealed.subarray(0, 3), sealed.subarray(3, 1500), sealed.subarray(1500)];
    expect((await through(sealedPieces, createDecryptStream(key))).equals(plain)).toBe(true);
  });

  it('uses a fresh nonce prefix per stream: the same plaintext encrypts differently', async () => {
    const plain = randomBytes(100);
    expect((await encrypt(plain)).equals(await encrypt(plain))).toBe(false);
  });

  describe('rejects tampering', () => {
    const plain = randomBytes(4 * chunkBytes + 10); // 5 chunks, the last one short
    let sealed: Buffer;
    const sealedOnce = encrypt(plain).then((value) => (sealed = value));

    async function expectRejected(forged: Buffer, message: RegExp = /failed authentication|truncated/): Promise<void> {
      await sealedOnce;
      await expect(decrypt(forged)).rejects.toThrow(message);
    }

    it('a flipped ciphertext bit', async () => {
      await sealedOnce;
      const forged = Buffer.from(sealed);
      forged[headerBytes + 2 * sealedChunk + 5]! ^= 1;
      await expectRejected(forged);
    });

    it('an edited header (chunk size field kept valid)', async () => {
      await sealedOnce;
      const forged = Buffer.from(sealed);
      forged[headerBytes - 1]! ^= 1; // last byte of the nonce prefix
      await expectRejected(forged);
    });

    it('reordered chunks', async () => {
      await sealedOnce;
      const { header, chunks } = split(sealed);
      await expectRejected(Buffer.concat([header, chunks[1]!, chunks[0]!, ...chunks.slice(2)]));
    });

    it('a duplicated chunk', async () => {
      await sealedOnce;
      const { header, chunks } = split(sealed);
      await expectRejected(Buffer.concat([header, chunks[0]!, chunks[0]!, ...chunks.slice(1)]));
    });

    it('truncation at a chunk boundary (the final chunk dropped)', async () => {
      await sealedOnce;
      const { header, chunks } = split(sealed);
      await expectRejected(Buffer.concat([header, ...chunks.slice(0, -1)]));
    });

    it('truncation inside a chunk', async () => {
      await sealedOnce;
      await expectRejected(sealed.subarray(0, sealed.length - 5));
    });

    it('bytes appended after the final chunk', async () => {
      await sealedOnce;
      const { chunks } = split(sealed);
      await expectRejected(Buffer.concat([sealed, chunks[0]!]));
    });

    it('a stream cut inside the header', async () => {
      await sealedOnce;
      await expectRejected(sealed.subarray(0, 12), /no complete header/);
    });

    it('the wrong key, naming the key the file needs', async () => {
      await sealedOnce;
      await expect(decrypt(sealed, randomBytes(32))).rejects.toThrow(new RegExp(`encrypted with key ${keyId(key)}`));
    });
  });

  it('reads a key file as 32 raw bytes or 64 hex characters, and refuses other sizes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbdist-key-'));
    writeFileSync(join(dir, 'raw'), key);
    writeFileSync(join(dir, 'hex'), `${key.toString('hex')}\n`);
    writeFileSync(join(dir, 'short'), randomBytes(16));
    expect(readKeyFile(join(dir, 'raw')).equals(key)).toBe(true);
    expect(readKeyFile(join(dir, 'hex')).equals(key)).toBe(true);
    expect(() => readKeyFile(join(dir, 'short'))).toThrow(/exactly 32 bytes/);
  });
});
