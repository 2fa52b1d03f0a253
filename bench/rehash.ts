/**
 * The control plane's re-hash of a stored backup (orchestrations/rehash.ts): throughput against the hash-only
 * limit of the same hasher, and peak RSS, on one blob in a fresh in-memory Azurite. Every variant runs in its own
 * child process (its own peak RSS), one after another, over the same bytes.
 *
 * Targets (issue 10): re-hash throughput / hash-only limit >= 0.7 on a 4 GiB blob; peak RSS < 256 MiB.
 */
import { mkdirSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { BlobServiceClient } from '@azure/storage-blob';
import { TestTokenCredential } from '../dev/azurite.js';
import { withFreshAzurite } from './lib/fresh-azurite.js';
import { runInChild, type ChildOutcome } from './lib/child.js';
import { ensureInputFile } from './lib/files.js';
import { MiB, fixed, metOrNot, printTable, ratio } from './lib/report.js';
import type { RehashVariant, RehashVariantInput, RehashVariantResult } from './rehash-variant.js';

const variantEntry = new URL('./rehash-variant.ts', import.meta.url);
const rssTargetMiB = 256;
const ratioTarget = 0.7;

export interface RehashBenchOptions {
  sizesMiB: number[];
  workDir: string;
  /** Bytes per rehashBlob call (REHASH_BUDGET_MIB); default 1 GiB so a 4 GiB blob takes 4 slices. */
  budgetMiB: number;
}

interface Row {
  variant: RehashVariant;
  outcome: ChildOutcome<RehashVariantResult | undefined>;
  load: number;
}

export async function runRehashBench(options: RehashBenchOptions): Promise<void> {
  mkdirSync(options.workDir, { recursive: true });
  for (const sizeMiB of options.sizesMiB) {
    console.log(`\nPreparing the ${sizeMiB} MiB input file in ${options.workDir} …`);
    const file = await ensureInputFile(options.workDir, sizeMiB, 'random');
    const budgetBytes = Math.min(options.budgetMiB, sizeMiB) * MiB;
    const { value: rows } = await withFreshAzurite(async (location) => {
      const path = `bench/rehash/${sizeMiB}MiB.bin`;
      const client = new BlobServiceClient(location.endpoint, new TestTokenCredential()).getContainerClient(location.container).getBlockBlobClient(path);
      await client.uploadFile(file, { blockSize: 8 * MiB, concurrency: 4 });
      const input = (variant: RehashVariant): RehashVariantInput => ({ variant, file, blob: { ...location, path }, budgetBytes });
      const measured: Row[] = [];
      for (const variant of ['idle', 'hash-only', 'hash-wasm-here', 'node-sha256', 'download-only', 'rehash'] as const) {
        measured.push({ variant, outcome: await runInChild<RehashVariantResult | undefined>(variantEntry, input(variant)), load: loadavg()[0]! });
      }
      return measured;
    });
    report(sizeMiB, statSync(file).size, budgetBytes, rows);
  }
}

function report(sizeMiB: number, bytes: number, budgetBytes: number, rows: Row[]): void {
  const result = (variant: RehashVariant) => {
    const outcome = rows.find((row) => row.variant === variant)?.outcome;
    return outcome?.ok ? outcome : undefined;
  };
  const speed = (variant: RehashVariant) => {
    const r = result(variant)?.result;
    return r ? r.bytes / MiB / r.seconds : undefined;
  };
  printTable(
    `Re-hash of a ${sizeMiB} MiB blob (slices of ${fixed(budgetBytes / MiB, 0)} MiB)`,
    ['variant', 'MiB/s', 'seconds', 'CPU s/GiB', 'slices', 'peak RSS MiB', 'vs hash-only', 'load'],
    rows.map(({ variant, outcome, load }) => {
      if (!outcome.ok) return [variant, `failed: ${outcome.error}`, '', '', '', fixed(outcome.peakRssMiB), '', fixed(load, 2)];
      const r = outcome.result;
      if (!r) return [variant, '', '', '', '', fixed(outcome.peakRssMiB), '', fixed(load, 2)];
      return [variant, fixed(speed(variant)), fixed(r.seconds), fixed(r.cpuSeconds / (r.bytes / 1024 / MiB), 2), r.slices ?? '', fixed(outcome.peakRssMiB), ratio(speed(variant), speed('hash-only')), fixed(load, 2)];
    }),
  );
  const rehash = result('rehash');
  const sameDigest = rehash?.result?.sha256 !== undefined && rehash.result.sha256 === result('hash-only')?.result?.sha256;
  const rehashRatio = speed('rehash') !== undefined && speed('hash-only') !== undefined ? speed('rehash')! / speed('hash-only')! : undefined;
  console.log(`Targets (${sizeMiB} MiB, ${bytes} bytes):`);
  console.log(`  re-hash >= ${ratioTarget} x hash-only limit: ${ratio(speed('rehash'), speed('hash-only'))} -> ${metOrNot(rehashRatio === undefined ? undefined : rehashRatio >= ratioTarget)}`);
  console.log(`  re-hash / hash-wasm alone on the calling thread (the bare hasher, stricter): ${ratio(speed('rehash'), speed('hash-wasm-here'))}`);
  console.log(`  re-hash / download-only (what the storage side allows here): ${ratio(speed('rehash'), speed('download-only'))}`);
  console.log(`  re-hash peak RSS < ${rssTargetMiB} MiB: ${fixed(rehash?.peakRssMiB)} MiB -> ${metOrNot(rehash ? rehash.peakRssMiB < rssTargetMiB : undefined)} (idle child: ${fixed(result('idle')?.peakRssMiB)} MiB)`);
  console.log(`  re-hash digest equals the hash-only pass's: ${rehash ? (sameDigest ? 'yes' : 'NO') : 'not compared'}`);
  if (sizeMiB < 4096) console.log('  (the target is for a 4 GiB blob: run `npm run bench -- rehash --size-mib 4096` on a quiet machine)');
}
