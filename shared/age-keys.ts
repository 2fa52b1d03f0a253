/**
 * age X25519 keys as people handle them (age-encryption.org/v1): recipients `age1…` and identities
 * `AGE-SECRET-KEY-1…`, both Bech32 (BIP 173, not Bech32m) over 32 raw bytes. Used by the control plane to
 * validate registered public keys (also in the portal's bundle: no Node APIs here), and by the runner's age stage
 * (runner-agent/pipeline/age.ts).
 */

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
const RECIPIENT_HRP = 'age';
const IDENTITY_HRP = 'age-secret-key-';
const KEY_BYTES = 32;

function polymod(values: number[]): number {
  let chk = 1;
  for (const value of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ value;
    for (let i = 0; i < 5; i += 1) if ((top >>> i) & 1) chk ^= GENERATOR[i]!;
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  const codes = [...hrp].map((c) => c.charCodeAt(0));
  return [...codes.map((c) => c >>> 5), 0, ...codes.map((c) => c & 31)];
}

/** Regroups bits (8 → 5 to encode, 5 → 8 to decode); undefined on non-zero padding when decoding. */
function convertBits(data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] | undefined {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const maxv = (1 << to) - 1;
  for (let i = 0; i < data.length; i += 1) {
    acc = (acc << from) | data[i]!;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & maxv);
    }
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv);
  } else if (bits >= from || ((acc << (to - bits)) & maxv) !== 0) {
    return undefined;
  }
  return out;
}

function bech32Encode(hrp: string, bytes: Uint8Array): string {
  const data = convertBits(bytes, 8, 5, true)!;
  const checksum = polymod([...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0]) ^ 1;
  const check = Array.from({ length: 6 }, (_, i) => (checksum >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...data, ...check].map((d) => CHARSET[d]).join('')}`;
}

/** Decodes a Bech32 string with the expected (lower-case) prefix; a reason when it is not one. */
function bech32Decode(text: string, hrp: string): { bytes: Uint8Array } | { problem: string } {
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) return { problem: 'mixes upper and lower case' };
  const lower = text.toLowerCase();
  const separator = lower.lastIndexOf('1');
  if (lower.slice(0, separator) !== hrp) return { problem: `does not start with ${hrp}1` };
  const data: number[] = [];
  for (const c of lower.slice(separator + 1)) {
    const value = CHARSET.indexOf(c);
    if (value < 0) return { problem: `contains ${JSON.stringify(c)}, which Bech32 does not use` };
    data.push(value);
  }
  if (data.length < 6 || polymod([...hrpExpand(hrp), ...data]) !== 1) return { problem: 'has a wrong checksum (mistyped or cut short)' };
  const bytes = convertBits(data.slice(0, -6), 5, 8, false);
  if (!bytes || bytes.length !== KEY_BYTES) return { problem: 'does not hold a 32-byte key' };
  return { bytes: Uint8Array.from(bytes) };
}

export type ParsedKey = { ok: true; key: Uint8Array } | { ok: false; problem: string };

/** An `age1…` X25519 recipient (public key). */
export function parseRecipient(text: string): ParsedKey {
  const decoded = bech32Decode(text.trim(), RECIPIENT_HRP);
  if ('problem' in decoded) return { ok: false, problem: `is not an age X25519 recipient (age1…): it ${decoded.problem}` };
  if (text.trim() !== text.trim().toLowerCase()) return { ok: false, problem: 'must be lower case, as age-keygen prints it' };
  return { ok: true, key: decoded.bytes };
}

/** An `AGE-SECRET-KEY-1…` identity (private key). */
export function parseIdentity(text: string): ParsedKey {
  const decoded = bech32Decode(text.trim(), IDENTITY_HRP);
  if ('problem' in decoded) return { ok: false, problem: `is not an age identity (AGE-SECRET-KEY-1…): it ${decoded.problem}` };
  return { ok: true, key: decoded.bytes };
}

export function formatRecipient(publicKey: Uint8Array): string {
  return bech32Encode(RECIPIENT_HRP, publicKey);
}

export function formatIdentity(privateKey: Uint8Array): string {
  return bech32Encode(IDENTITY_HRP, privateKey).toUpperCase();
}
