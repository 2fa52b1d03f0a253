/**
 * The encryption stage alone (runner-agent/pipeline/): plaintext from memory in 1 MiB pieces → stage → a counting
 * sink, so the numbers are the stage's own cost without file, compression or storage. Side by side in one run,
 * every measurement in a child process of its own, rounds interleaved (A, B, C, A, B, C, …) so load on the shared
 * machine weighs on every variant alike:
 *   aes-256-gcm         the retired runner-key format (DBDE, crypto.ts): native AES-GCM over 4 MiB chunks
 *   age native          what copies use now (age.ts): age v1, ChaCha20-Poly1305 over 64 KiB chunks, Node's crypto
 *   age-encryption npm  the `age-encryption` package (pure JavaScript, @noble/ciphers), same format; a smaller
 *                       input because it is slow: it is why age.ts does the payload with native crypto
 * Reported: median wall-clock MiB/s, CPU seconds per GiB (user + system of the child) and peak RSS; the target is
 * age native ≥ 0.8 × aes-256-gcm. On a loaded machine the CPU column is the steadier one.
 */
import { runInChild } from './lib/child.js';
import { percentile } from './lib/stats.js';
import { fixed, metOrNot, printTable, ratio } from './lib/report.js';
import type { EncryptionSample, EncryptionVariant, EncryptionVariantInput } from './encryption-variant.js';

const variantEntry = new URL('./encryption-variant.ts', import.meta.url);
const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 0.5);

export async function runEncryptionBench(options: { sizeMiB: number; rounds: number; npmSizeMiB: number }): Promise<void> {
  const variants: Array<{ variant: EncryptionVariant; name: string; sizeMiB: number }> = [
    { variant: 'aes-256-gcm', name: 'aes-256-gcm (DBDE, retired)', sizeMiB: options.sizeMiB },
    { variant: 'age-native', name: 'age native (ChaCha20-Poly1305)', sizeMiB: options.sizeMiB },
    { variant: 'age-encryption-npm', name: 'age-encryption npm (pure JS)', sizeMiB: Math.min(options.npmSizeMiB, options.sizeMiB) },
  ];
  const samples = new Map<EncryptionVariant, Array<EncryptionSample & { peakRssMiB: number }>>(variants.map((v) => [v.variant, []]));
  for (let round = 0; round < options.rounds; round += 1) {
    for (const { variant, sizeMiB } of variants) {
      const outcome = await runInChild<EncryptionSample>(variantEntry, { variant, sizeMiB } satisfies EncryptionVariantInput);
      if (!outcome.ok) throw new Error(`${variant}: ${outcome.error}`);
      samples.get(variant)!.push({ ...outcome.result, peakRssMiB: outcome.peakRssMiB });
    }
  }

  const summary = variants.map(({ variant, name, sizeMiB }) => {
    const list = samples.get(variant)!;
    return {
      name,
      sizeMiB,
      mibPerSecond: median(list.map((s) => s.mibPerSecond)),
      cpu: median(list.map((s) => s.cpuSecondsPerGiB)),
      peakRssMiB: Math.max(...list.map((s) => s.peakRssMiB)),
    };
  });
  const [aes, age, npm] = summary as [(typeof summary)[0], (typeof summary)[0], (typeof summary)[0]];
  printTable(
    `Encryption stage alone, ${options.rounds} interleaved rounds (a child process each), medians`,
    ['variant', 'MiB per round', 'MiB/s', 'client CPU s/GiB', 'peak RSS MiB', 'MiB/s vs aes-256-gcm', 'CPU/GiB vs aes-256-gcm'],
    summary.map((s) => [s.name, s.sizeMiB, fixed(s.mibPerSecond), fixed(s.cpu, 2), fixed(s.peakRssMiB, 0), ratio(s.mibPerSecond, aes.mibPerSecond), ratio(s.cpu, aes.cpu)]),
  );
  const throughput = age.mibPerSecond / aes.mibPerSecond;
  const cpuBound = aes.cpu / age.cpu; // the rate ratio if both were CPU-bound on an idle core
  printTable('Target', ['target', 'result', 'met?'], [
    ['age native ≥ 0.8 × aes-256-gcm (wall-clock MiB/s)', `${throughput.toFixed(2)}x`, metOrNot(throughput >= 0.8)],
    ['the same from CPU per GiB (client-bound rate)', `${cpuBound.toFixed(2)}x`, metOrNot(cpuBound >= 0.8)],
    ['(context) pure-JS age-encryption vs native age (MiB/s)', ratio(npm.mibPerSecond, age.mibPerSecond), ''],
  ]);
}
