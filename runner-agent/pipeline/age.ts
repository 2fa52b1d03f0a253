/**
 * The age format (age-encryption.org/v1, https://github.com/C2SP/C2SP/blob/main/age.md) with X25519 recipients,
 * built on Node's native crypto so the payload runs at OpenSSL speed (the pure-JS `age-encryption` package is
 * several times slower than the AES-GCM stage it replaces; see bench/RESULTS.md). Files open with the `age` CLI.
 *
 *   header  = "age-encryption.org/v1\n"
 *             per recipient: "-> X25519 " b64(ephemeral share) "\n" b64(wrapped file key) "\n"
 *             "---" " " b64(HMAC-SHA256(HKDF(file key, "", "header"), header up to and including "---")) "\n"
 *   payload = nonce (16 random bytes) | STREAM of ChaCha20-Poly1305 chunks over 64 KiB of plaintext each,
 *             key HKDF(file key, nonce, "payload"), chunk nonce = 11-byte counter | final flag (1 byte)
 *
 * A fresh 16-byte file key per copy; each recipient gets it wrapped with
 * HKDF(X25519(ephemeral, recipient), ephemeral share | recipient, "age-encryption.org/v1/X25519").
 * The final flag makes a file cut at a chunk boundary fail; the counter makes reordered chunks fail; the header
 * MAC makes an edited header (a swapped recipient stanza) fail.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { formatIdentity, formatRecipient, parseIdentity, parseRecipient } from '../../shared/age-keys.js';
import { AppError, errorMessage } from '../../shared/errors.js';
import { ByteQueue, DecryptionError } from './byte-queue.js';

export const AGE_INTRO = 'age-encryption.org/v1\n';
const X25519_INFO = 'age-encryption.org/v1/X25519';
const CHUNK_BYTES = 64 * 1024;
const TAG_BYTES = 16;
const FILE_KEY_BYTES = 16;
const NONCE_BYTES = 16;
/** A header larger than this is not one we wrote or can need; stops unbounded buffering of garbage. */
const MAX_HEADER_BYTES = 64 * 1024;
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const ZERO_NONCE = Buffer.alloc(12);

const b64 = (bytes: Buffer): string => bytes.toString('base64').replace(/=+$/, '');

/** Canonical unpadded base64, as the spec requires; undefined for anything else. */
function unb64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return b64(bytes) === text ? bytes : undefined;
}

const hkdf = (ikm: Buffer, salt: Buffer, info: string): Buffer => Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));

const publicKeyObject = (raw: Uint8Array): KeyObject => createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
const privateKeyObject = (raw: Uint8Array): KeyObject =>
  createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
const rawPublic = (key: KeyObject): Buffer => key.export({ format: 'der', type: 'spki' }).subarray(-32);

function chachaSeal(key: Buffer, nonce: Buffer, plain: Buffer): Buffer[] {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  return [cipher.update(plain), cipher.final(), cipher.getAuthTag()];
}

/** Undefined when the tag does not verify. */
function chachaOpen(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < TAG_BYTES) return undefined;
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

function chunkNonce(index: number, final: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(index, 5, 6); // the 11-byte big-endian counter; 2^48 chunks of 64 KiB is far beyond any file
  nonce[11] = final ? 1 : 0;
  return nonce;
}

/** A fresh identity, as `age-keygen` makes one (tests, the sandbox). */
export function generateAgeIdentity(): { identity: string; recipient: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const raw = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  return { identity: formatIdentity(raw), recipient: formatRecipient(rawPublic(publicKey)) };
}

/** The identities in an age key file (`age-keygen -o` output: comments, then AGE-SECRET-KEY-1… lines). */
export function readIdentityFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new AppError('config_invalid', `Identity file ${path} cannot be read: ${errorMessage(error)}`);
  }
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
  for (const line of lines) {
    const parsed = parseIdentity(line);
    if (!parsed.ok) throw new AppError('config_invalid', `Identity file ${path}: a line ${parsed.problem}`);
  }
  if (lines.length === 0) throw new AppError('config_invalid', `Identity file ${path} holds no AGE-SECRET-KEY-1… line`);
  return lines;
}

function recipientKey(recipient: string): Uint8Array {
  const parsed = parseRecipient(recipient);
  if (!parsed.ok) throw new AppError('validation_failed', `Recipient ${JSON.stringify(recipient)} ${parsed.problem}`);
  return parsed.key;
}

function x25519Stanza(fileKey: Buffer, recipient: Uint8Array): string {
  const ephemeral = generateKeyPairSync('x25519');
  const share = rawPublic(ephemeral.publicKey);
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: publicKeyObject(recipient) });
  const wrapKey = hkdf(shared, Buffer.concat([share, recipient]), X25519_INFO);
  return `-> X25519 ${b64(share)}\n${b64(Buffer.concat(chachaSeal(wrapKey, ZERO_NONCE, fileKey)))}\n`;
}

function headerFor(fileKey: Buffer, recipients: Uint8Array[]): Buffer {
  const withoutMac = AGE_INTRO + recipients.map((r) => x25519Stanza(fileKey, r)).join('') + '---';
  const mac = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(withoutMac).digest();
  return Buffer.from(`${withoutMac} ${b64(mac)}\n`, 'ascii');
}

/** Encrypting Transform: plaintext in, an age file to `recipients` (age1… strings) out. */
export function createAgeEncryptStream(recipients: readonly string[]): Transform {
  if (recipients.length === 0) throw new AppError('validation_failed', 'age encryption needs at least one recipient');
  const fileKey = randomBytes(FILE_KEY_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const payloadKey = hkdf(fileKey, nonce, 'payload');
  let preamble: Buffer | undefined = Buffer.concat([headerFor(fileKey, recipients.map(recipientKey)), nonce]);
  const pending = new ByteQueue();
  let index = 0;

  /** Seals one chunk into `out` (the header travels with the first chunk). */
  function seal(out: Buffer[], plain: Buffer, final: boolean): void {
    if (preamble) {
      out.push(preamble);
      preamble = undefined;
    }
    out.push(...chachaSeal(payloadKey, chunkNonce(index, final), plain));
    index += 1;
  }

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const out: Buffer[] = [];
      let offset = 0;
      if (pending.length > 0) {
        // Top up the partial chunk first; a whole chunk is sealed only once a byte after it has arrived.
        const topUp = Math.min(CHUNK_BYTES - pending.length, chunk.length);
        pending.push(chunk.subarray(0, topUp));
        offset = topUp;
        if (pending.length === CHUNK_BYTES && offset < chunk.length) seal(out, pending.take(CHUNK_BYTES), false);
      }
      // Whole chunks straight from the input, without copying; at least one byte stays back for the final chunk.
      while (chunk.length - offset > CHUNK_BYTES) {
        seal(out, chunk.subarray(offset, offset + CHUNK_BYTES), false);
        offset += CHUNK_BYTES;
      }
      pending.push(chunk.subarray(offset));
      // One push per input chunk: per-chunk pushes cost more than the cipher at 64 KiB.
      if (out.length > 0) this.push(out.length === 1 ? out[0] : Buffer.concat(out));
      callback();
    },
    flush(callback: TransformCallback) {
      const out: Buffer[] = [];
      seal(out, pending.take(pending.length), true);
      this.push(Buffer.concat(out));
      callback();
    },
  });
}

interface Stanza {
  args: string[];
  body: Buffer;
}

/** Parses the header text (without its MAC line); throws DecryptionError naming what is wrong. */
function parseStanzas(lines: string[]): Stanza[] {
  const stanzas: Stanza[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (!line.startsWith('-> ')) throw new DecryptionError(`malformed age header: unexpected line ${JSON.stringify(line.slice(0, 40))}`);
    const args = line.slice(3).split(' ');
    i += 1;
    const bodyParts: string[] = [];
    for (;;) {
      const bodyLine = lines[i];
      if (bodyLine === undefined) throw new DecryptionError('malformed age header: a stanza has no body');
      i += 1;
      bodyParts.push(bodyLine);
      if (bodyLine.length < 64) break; // the last body line is always shorter than a full 64-column line
    }
    const body = unb64(bodyParts.join(''));
    if (!body) throw new DecryptionError('malformed age header: a stanza body is not canonical base64');
    stanzas.push({ args, body });
  }
  return stanzas;
}

function unwrapFileKey(stanzas: Stanza[], identities: { key: KeyObject; recipient: Buffer }[]): Buffer | undefined {
  for (const stanza of stanzas) {
    if (stanza.args[0] !== 'X25519') continue; // other recipient types (and age's "grease" stanzas) are not ours
    const share = stanza.args.length === 2 ? unb64(stanza.args[1]!) : undefined;
    if (!share || share.length !== 32 || stanza.body.length !== FILE_KEY_BYTES + TAG_BYTES) {
      throw new DecryptionError('malformed age header: invalid X25519 stanza');
    }
    for (const identity of identities) {
      const shared = diffieHellman({ privateKey: identity.key, publicKey: publicKeyObject(share) });
      if (shared.every((byte) => byte === 0)) throw new DecryptionError('malformed age header: X25519 share is a low-order point');
      const wrapKey = hkdf(shared, Buffer.concat([share, identity.recipient]), X25519_INFO);
      const fileKey = chachaOpen(wrapKey, ZERO_NONCE, stanza.body);
      if (fileKey) return fileKey;
    }
  }
  return undefined;
}

/**
 * Decrypting Transform for age files to X25519 recipients. Each 64 KiB chunk is authenticated before its
 * plaintext is pushed; a file cut short fails at its end, so a consumer must discard its output on error.
 */
export function createAgeDecryptStream(identities: readonly string[]): Transform {
  const keys = identities.map((identity) => {
    const parsed = parseIdentity(identity);
    if (!parsed.ok) throw new AppError('validation_failed', `The identity ${parsed.problem}`);
    const key = privateKeyObject(parsed.key);
    return { key, recipient: rawPublic(createPublicKey(key)) };
  });
  let headerBytes: Buffer = Buffer.alloc(0);
  let payloadKey: Buffer | undefined;
  let payloadNonce: Buffer | undefined;
  const pending = new ByteQueue();
  let index = 0;
  const sealedBytes = CHUNK_BYTES + TAG_BYTES;

  /** Consumes the header once it is complete; returns the bytes after it, or undefined while incomplete. */
  function readHeader(chunk: Buffer): Buffer | undefined {
    headerBytes = Buffer.concat([headerBytes, chunk]);
    const seen = Math.min(headerBytes.length, AGE_INTRO.length);
    if (headerBytes.subarray(0, seen).toString('latin1') !== AGE_INTRO.slice(0, seen)) {
      throw new DecryptionError('not an age file (it does not start with "age-encryption.org/v1")');
    }
    const macLineStart = headerBytes.indexOf('\n---');
    const macLineEnd = macLineStart < 0 ? -1 : headerBytes.indexOf('\n', macLineStart + 1);
    if (macLineEnd < 0) {
      if (headerBytes.length > MAX_HEADER_BYTES) throw new DecryptionError('malformed age header: no end of header in the first 64 KiB');
      return undefined;
    }
    const text = headerBytes.subarray(0, macLineEnd).toString('latin1');
    const macLine = text.slice(macLineStart + 1);
    const mac = macLine.startsWith('--- ') ? unb64(macLine.slice(4)) : undefined;
    if (!mac || mac.length !== 32) throw new DecryptionError('malformed age header: bad MAC line');
    const stanzaText = text.slice(AGE_INTRO.length, macLineStart);
    if (macLineStart < AGE_INTRO.length || stanzaText === '') throw new DecryptionError('malformed age header: no recipient stanza');
    const stanzas = parseStanzas(stanzaText.split('\n'));
    const fileKey = unwrapFileKey(stanzas, keys);
    if (!fileKey) {
      throw new DecryptionError('no identity given matches any recipient of this file: it was encrypted to other keys (wrong key file?)');
    }
    const expected = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(text.slice(0, macLineStart + 4), 'latin1').digest();
    if (!timingSafeEqual(expected, mac)) throw new DecryptionError('the age header failed authentication: the file was edited');
    payloadKey = fileKey; // the payload key needs the nonce that follows the header
    return headerBytes.subarray(macLineEnd + 1);
  }

  function open(sealed: Buffer, final: boolean): Buffer {
    if (final && sealed.length === TAG_BYTES && index > 0) throw new DecryptionError('malformed age payload: empty final chunk');
    const plain = chachaOpen(payloadKey!, chunkNonce(index, final), sealed);
    if (!plain) {
      throw new DecryptionError(`age payload chunk ${index} failed authentication: the file was modified or truncated`);
    }
    index += 1;
    return plain;
  }

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        let body: Buffer | undefined = chunk;
        if (!payloadKey) body = readHeader(chunk);
        if (body) pending.push(body);
        if (payloadKey && !payloadNonce && pending.length >= NONCE_BYTES) {
          payloadNonce = pending.take(NONCE_BYTES);
          payloadKey = hkdf(payloadKey, payloadNonce, 'payload');
        }
        // A full-size chunk is known not to be the last only once a byte after it has arrived.
        if (payloadNonce) while (pending.length > sealedBytes) this.push(open(pending.take(sealedBytes), false));
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        if (!payloadKey) throw new DecryptionError('truncated age file (no complete header)');
        if (!payloadNonce || pending.length === 0) throw new DecryptionError('truncated age file (no payload)');
        this.push(open(pending.take(pending.length), true));
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
}

/** True when `start` (the first bytes of a file) is an age file's beginning. */
export function isAgeFile(start: Buffer): boolean {
  return start.subarray(0, AGE_INTRO.length).toString('latin1') === AGE_INTRO;
}
