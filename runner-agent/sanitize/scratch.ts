/** Scratch database names and the per-copy masking key. */
import { createHmac, randomBytes } from 'node:crypto';
import type { MaskingKey } from './types.js';

export const DEFAULT_SCRATCH_PREFIX = 'dbdist_scratch_';
/** Lower case, starts with a letter, short: legal unquoted on both engines, and far below PostgreSQL's 63 bytes. */
export const SCRATCH_PREFIX_PATTERN = /^[a-z][a-z0-9_]{2,29}$/;

/** `<prefix><job id, 12 hex>_<attempt id>`: unique per attempt, recognisable by its prefix. */
export function scratchName(prefix: string, jobId: string, attemptId: string): string {
  return `${prefix}${jobId.replace(/-/g, '').slice(0, 12).toLowerCase()}_${attemptId.replace(/[^a-z0-9]/gi, '').slice(0, 16).toLowerCase()}`;
}

const BLOCK_BYTES = 64;

/** A fresh random HMAC-SHA256 key as its inner and outer pads, so SQL can compute HMAC with plain SHA-256. */
export function newMaskingKey(key: Buffer = randomBytes(32)): MaskingKey {
  const block = Buffer.alloc(BLOCK_BYTES);
  key.copy(block);
  return { ipad: block.map((b) => b ^ 0x36) as Buffer, opad: block.map((b) => b ^ 0x5c) as Buffer };
}

/** The verifier's own keyed digest of a value (a different random key from the masking one). */
export function keyedDigest(key: Buffer, value: string): string {
  return createHmac('sha256', key).update(value, 'utf8').digest('base64');
}

/** Realistic fakes for the `name` strategy, chosen by bytes of the input's HMAC. */
export const FIRST_NAMES = ['Ada', 'Alan', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Margaret', 'Niklaus', 'Radia', 'Tim', 'Hedy', 'John', 'Karen', 'Leslie'];
export const LAST_NAMES = ['Lovelace', 'Turing', 'Hopper', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Hamilton', 'Wirth', 'Perlman', 'Lee', 'Lamarr', 'Backus', 'Jones', 'Lamport'];
