/**
 * Chunked AES-256-GCM envelope for backups ("dbdist encrypted stream", version 1).
 *
 * One GCM key/nonce pair is only safe for ~64 GiB, and a single tag would only be checked at the very end, so
 * the plaintext is cut into chunks (4 MiB by default), each sealed on its own:
 *
 *   header  = "DBDE" | version (1 byte) | chunk size (uint32 BE) | key id length (1 byte) | key id (ASCII)
 *             | nonce prefix (8 random bytes)
 *   chunk i = ciphertext (chunk size bytes; the final chunk may be shorter, even empty) | GCM tag (16 bytes)
 *
 *   nonce(i) = nonce prefix | i (uint32 BE)          — unique per chunk and per stream (random prefix)
 *   AAD(i)   = SHA-256(header) | i (uint64 BE) | final flag (1 byte)
 *
 * Binding the index makes reordered or duplicated chunks fail; binding the final flag makes a stream cut at a
 * chunk boundary (truncated) or extended after its end fail; binding the header makes an edited header fail.
 * The key id is the first 8 bytes of SHA-256(key), in hex: it tells an operator which key a file needs without
 * revealing anything usable about the key.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { AppError, errorMessage } from '../../shared/errors.js';
import { ByteQueue, DecryptionError } from './byte-queue.js';

export { DecryptionError };

const MAGIC = Buffer.from('DBDE', 'ascii');
const VERSION = 1;
const TAG_BYTES = 16;
const NONCE_PREFIX_BYTES = 8;
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
const MAX_CHUNK_BYTES = 64 * 1024 * 1024;
/** The counter is 32 bits: 2^32 chunks of 4 MiB is 16 PiB, far above any backup. */
const MAX_CHUNKS = 2 ** 32;

export const KEY_BYTES = 32;

/** Reads a 32-byte key: the raw bytes, or 64 hex characters (a trailing newline is fine). */
export function readKeyFile(path: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (error) {
    throw new AppError('config_invalid', `Encryption key file ${path} cannot be read: ${errorMessage(error)}`);
  }
  if (raw.length === KEY_BYTES) return raw;
  const text = raw.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  throw new AppError(
    'config_invalid',
    `Encryption key file ${path} must hold exactly 32 bytes (or 64 hex characters); it has ${raw.length} bytes`,
  );
}

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest().subarray(0, 8).toString('hex');
}

function assertKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) throw new AppError('config_invalid', `An AES-256 key has 32 bytes, not ${key.length}`);
}

function encodeHeader(chunkBytes: number, id: string, noncePrefix: Buffer): Buffer {
  const idBytes = Buffer.from(id, 'ascii');
  const fixed = Buffer.alloc(4 + 1 + 4 + 1);
  MAGIC.copy(fixed, 0);
  fixed.writeUInt8(VERSION, 4);
  fixed.writeUInt32BE(chunkBytes, 5);
  fixed.writeUInt8(idBytes.length, 9);
  return Buffer.concat([fixed, idBytes, noncePrefix]);
}

interface Header {
  chunkBytes: number;
  keyId: string;
  noncePrefix: Buffer;
  /** The header bytes as read, bound into every chunk's AAD. */
  raw: Buffer;
}

/** Parses a header from the start of `data`; undefined when more bytes are needed. */
function decodeHeader(data: Buffer): Header | undefined {
  if (data.length < 10) return undefined;
  if (!data.subarray(0, 4).equals(MAGIC)) throw new DecryptionError('not a dbdist encrypted stream (bad magic bytes)');
  const version = data.readUInt8(4);
  if (version !== VERSION) throw new DecryptionError(`unsupported encrypted stream version ${version}`);
  const chunkBytes = data.readUInt32BE(5);
  if (chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) throw new DecryptionError(`invalid chunk size ${chunkBytes}`);
  const idLength = data.readUInt8(9);
  const total = 10 + idLength + NONCE_PREFIX_BYTES;
  if (data.length < total) return undefined;
  return {
    chunkBytes,
    keyId: data.subarray(10, 10 + idLength).toString('ascii'),
    noncePrefix: Buffer.from(data.subarray(10 + idLength, total)),
    raw: Buffer.from(data.subarray(0, total)),
  };
}

function nonceFor(prefix: Buffer, index: number): Buffer {
  const nonce = Buffer.alloc(12);
  prefix.copy(nonce, 0);
  nonce.writeUInt32BE(index, NONCE_PREFIX_BYTES);
  return nonce;
}

function aadFor(headerDigest: Buffer, index: number, final: boolean): Buffer {
  const aad = Buffer.alloc(headerDigest.length + 9);
  headerDigest.copy(aad, 0);
  aad.writeBigUInt64BE(BigInt(index), headerDigest.length);
  aad.writeUInt8(final ? 1 : 0, headerDigest.length + 8);
  return aad;
}

/** Encrypting Transform: plaintext in, header + sealed chunks out. */
export function createEncryptStream(key: Buffer, options: { chunkBytes?: number } = {}): Transform {
  assertKey(key);
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) throw new AppError('internal', `invalid chunk size ${chunkBytes}`);
  const noncePrefix = randomBytes(NONCE_PREFIX_BYTES);
  const header = encodeHeader(chunkBytes, keyId(key), noncePrefix);
  const headerDigest = createHash('sha256').update(header).digest();
  const pending = new ByteQueue();
  let index = 0;
  let headerSent = false;

  function seal(plain: Buffer, final: boolean): Buffer {
    if (index >= MAX_CHUNKS) throw new Error('stream too long for one encryption envelope');
    const headerIfFirst = headerSent ? [] : [header]; // the header travels with the first chunk
    headerSent = true;
    const cipher = createCipheriv('aes-256-gcm', key, nonceFor(noncePrefix, index));
    cipher.setAAD(aadFor(headerDigest, index, final));
    const sealed = Buffer.concat([...headerIfFirst, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    index += 1;
    return sealed;
  }

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        pending.push(chunk);
        // Keep at least one byte back: the final chunk (flagged as such) is only known at the end.
        while (pending.length > chunkBytes) this.push(seal(pending.take(chunkBytes), false));
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        this.push(seal(pending.take(pending.length), true));
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
}

/**
 * Decrypting Transform. Each chunk is authenticated before its plaintext is pushed; a stream that was cut short
 * fails at its end, so a consumer must discard its output when the stream errors.
 */
export function createDecryptStream(key: Buffer): Transform {
  assertKey(key);
  const expectedKeyId = keyId(key);
  const pending = new ByteQueue();
  let header: Header | undefined;
  let headerDigest: Buffer | undefined;
  let index = 0;
  let headerBytes = Buffer.alloc(0);

  function open(sealed: Buffer, final: boolean): Buffer {
    const h = header!;
    if (sealed.length < TAG_BYTES) throw new DecryptionError('truncated encrypted stream (incomplete chunk)');
    const decipher = createDecipheriv('aes-256-gcm', key, nonceFor(h.noncePrefix, index));
    decipher.setAAD(aadFor(headerDigest!, index, final));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      const plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
      index += 1;
      return plain;
    } catch {
      throw new DecryptionError(
        `chunk ${index} failed authentication: the file was modified, truncated, reordered or extended, or the key is wrong`,
      );
    }
  }

  function readHeader(chunk: Buffer): Buffer | undefined {
    headerBytes = Buffer.concat([headerBytes, chunk]);
    const parsed = decodeHeader(headerBytes);
    if (!parsed) return undefined;
    if (parsed.keyId !== expectedKeyId) {
      throw new DecryptionError(`this file was encrypted with key ${parsed.keyId}; the key given is ${expectedKeyId}`);
    }
    header = parsed;
    headerDigest = createHash('sha256').update(parsed.raw).digest();
    return headerBytes.subarray(parsed.raw.length);
  }

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        let body: Buffer | undefined = chunk;
        if (!header) body = readHeader(chunk);
        if (body) pending.push(body);
        const sealedBytes = header ? header.chunkBytes + TAG_BYTES : Infinity;
        // A full-size chunk is known not to be the last only once a byte after it has arrived.
        while (pending.length > sealedBytes) this.push(open(pending.take(sealedBytes), false));
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        if (!header) throw new DecryptionError('truncated encrypted stream (no complete header)');
        this.push(open(pending.take(pending.length), true));
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
}
