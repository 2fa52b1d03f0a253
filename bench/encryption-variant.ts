/**
 * One measurement of bench/encryption.ts in a child process of its own (bench/lib/child.ts): a fresh heap and
 * its own peak RSS for every variant and round, so one variant's garbage never lands on another's CPU time.
 */
import { randomBytes } from 'node:crypto';
import { Duplex, Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createAgeDecryptStream, createAgeEncryptStream, generateAgeIdentity } from '../runner-agent/pipeline/age.js';
import { createEncryptStream } from '../runner-agent/pipeline/crypto.js';
import { serveChild } from './lib/child.js';
import { MiB } from './lib/report.js';

export type EncryptionVariant = 'aes-256-gcm' | 'age-native' | 'age-encryption-npm';
export interface EncryptionVariantInput {
  variant: EncryptionVariant;
  sizeMiB: number;
}
export interface EncryptionSample {
  mibPerSecond: number;
  cpuSecondsPerGiB: number;
}

const GiB = 1024 * MiB;
const piece = randomBytes(MiB); // what the compression stage or the engine hands on, roughly

function source(totalMiB: number): Readable {
  let left = totalMiB;
  return new Readable({
    read() {
      this.push(left-- > 0 ? piece : null);
    },
  });
}

/** Runs `totalMiB` through `stage` into a sink that only counts; the stage's output size is checked. */
async function measure(totalMiB: number, stage: () => Transform): Promise<EncryptionSample> {
  let out = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out += chunk.length;
      callback();
    },
  });
  const cpu = process.cpuUsage();
  const start = performance.now();
  await pipeline(source(totalMiB), stage(), sink);
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  if (out < totalMiB * MiB) throw new Error(`stage wrote ${out} bytes for ${totalMiB} MiB of input`);
  return { mibPerSecond: totalMiB / seconds, cpuSecondsPerGiB: (used.user + used.system) / 1e6 / ((totalMiB * MiB) / GiB) };
}

/** The npm package's streaming API (web streams) wrapped as a Node Transform, for the same harness. */
async function npmAgeStage(recipient: string): Promise<() => Transform> {
  const { Encrypter } = await import('age-encryption');
  return () => {
    const input = new TransformStream<Uint8Array, Uint8Array>();
    const encrypter = new Encrypter();
    encrypter.addRecipient(recipient);
    const output = encrypter.encrypt(input.readable);
    const readable = new ReadableStream<Uint8Array>({
      async start(controller) {
        const reader = (await output).getReader();
        for (let r = await reader.read(); !r.done; r = await reader.read()) controller.enqueue(r.value);
        controller.close();
      },
    });
    return Duplex.fromWeb({ readable, writable: input.writable }) as unknown as Transform;
  };
}

async function stageFor(variant: EncryptionVariant): Promise<() => Transform> {
  const { identity, recipient } = generateAgeIdentity();
  if (variant === 'aes-256-gcm') {
    const key = randomBytes(32);
    return () => createEncryptStream(key);
  }
  if (variant === 'age-encryption-npm') return npmAgeStage(recipient);
  // Correctness in the same run: what the native age stage writes opens again (the tests prove CLI interoperability).
  const opened: Buffer[] = [];
  await pipeline(source(3), createAgeEncryptStream([recipient]), createAgeDecryptStream([identity]), new Writable({ write: (c, _e, cb) => (opened.push(c), cb()) }));
  if (!Buffer.concat(opened).equals(Buffer.concat([piece, piece, piece]))) throw new Error('age round trip failed');
  return () => createAgeEncryptStream([recipient]);
}

serveChild(async (input: EncryptionVariantInput): Promise<EncryptionSample> => {
  const stage = await stageFor(input.variant);
  await measure(8, stage); // warm-up: JIT, OpenSSL's tables
  return measure(input.sizeMiB, stage);
});
