/**
 * Upload pipeline benchmark (runner → Azurite over loopback HTTPS, through a real write SAS).
 *
 * Every variant runs in its own child process (its own peak RSS) against a fresh in-memory Azurite (an
 * earlier blob never weighs on a later variant). Variants, side by side in one run:
 *   hash-only              the limit: read the file once and SHA-256 it, no upload
 *   azurite-ceiling        Azurite's own ceiling for dbdist's requests: one 8 MiB buffer staged over and over
 *                          with its MD5, no file, no hashing (512 MiB at most: it measures a rate)
 *   azurite-ceiling-crc64  the same without MD5: Azurite then computes CRC64 in JavaScript (uploadFile's case)
 *   uploadFile             what a user would pick: BlockBlobClient.uploadFile, default options, no hashing
 *   naive                  the seed's approach: readFile into memory, then uploadData
 *   dbdist                 runner-agent/pipeline/upload.ts: hash + upload in one stream; then with gzip, zstd, age encryption
 *   uploadFile-null, dbdist-null  the same two against the null target (bench/lib/null-blob-server.mjs: Put Block
 *                          and Put Block List over loopback HTTPS, bytes discarded), which takes bytes faster than
 *                          Azurite: the client's own limit, and the fair CPU comparison
 * Besides wall-clock MiB/s it records CPU seconds per GiB, in the client and in Azurite: on a shared machine
 * the CPU cost moves far less with other load than the wall clock does. "client-bound MiB/s" is 1024 divided by
 * the client's CPU s/GiB: the rate the client alone could reach on one core if storage cost nothing.
 *
 * By default the slow variants (ceilings, gzip/zstd/age, the compressible text file) run at the smallest size
 * only, so the default run fits in ~15 minutes on 2 cores; `--all-variants` runs everything at every size.
 */
import { mkdirSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { runInChild, type ChildOutcome } from './lib/child.js';
import { ensureInputFile, type Content } from './lib/files.js';
import { withFreshAzurite } from './lib/fresh-azurite.js';
import { withFreshNullTarget } from './lib/fresh-null-target.js';
import { fixed, metOrNot, MiB, printTable, ratio } from './lib/report.js';
import type { UploadVariant, VariantInput, VariantResult } from './upload-variant.js';

const variantEntry = new URL('./upload-variant.ts', import.meta.url);
const rssTargetMiB = 256;
/** The ceilings measure a rate, not a size: a few hundred blocks are plenty (the CRC64 one is slow). */
const ceilingMiB = 512;
const GiB = 1024 * MiB;

export interface UploadBenchOptions {
  sizesMiB: number[];
  workDir: string;
  allVariants: boolean;
}

interface Row {
  variant: UploadVariant;
  content: Content;
  outcome: ChildOutcome<VariantResult | undefined>;
  /** CPU of the storage end (Azurite, or the null target) during the variant. */
  targetCpuSeconds?: number;
  /** 1-minute load average when the variant ended: how busy the machine was. */
  load: number;
}

const everySize: UploadVariant[] = ['uploadFile', 'uploadFile-null', 'naive', 'dbdist', 'dbdist-null'];
/** Client CPU per GiB allowed beyond uploadFile's (which does not hash). */
const cpuVsUploadFileTarget = 1.4;
/** Throughput against the null target, as a share of the hash-only read. */
const nullVsHashOnlyTarget = 0.8;
/** Peak RSS at the largest size may exceed the smallest size's by this share at most. */
const rssGrowthTarget = 0.1;
const smallestSizeOnly: UploadVariant[] = ['azurite-ceiling', 'azurite-ceiling-crc64', 'dbdist+gzip', 'dbdist+zstd', 'dbdist+age'];
const textVariants: UploadVariant[] = ['dbdist', 'dbdist+gzip', 'dbdist+zstd'];

export async function runUploadBench(options: UploadBenchOptions): Promise<void> {
  mkdirSync(options.workDir, { recursive: true });
  const floor = await runInChild<undefined>(variantEntry, { variant: 'idle', file: '' } satisfies VariantInput);
  console.log(`Child process floor (Node + every module of the variants loaded, idle): peak RSS ${fixed(floor.ok ? floor.peakRssMiB : undefined)} MiB`);

  printCpuBreakdown();

  const smallest = Math.min(...options.sizesMiB);
  const dbdistRssBySize = new Map<number, number>();
  for (const sizeMiB of options.sizesMiB) {
    const full = options.allVariants || sizeMiB === smallest;
    console.log(`\nPreparing the ${sizeMiB} MiB input file(s) in ${options.workDir} …`);
    const randomFile = await ensureInputFile(options.workDir, sizeMiB, 'random');
    const rows: Row[] = [await runVariant('hash-only', 'random', randomFile, false)];
    for (const variant of [...everySize, ...(full ? smallestSizeOnly : [])]) rows.push(await runVariant(variant, 'random', randomFile, true));
    if (full) {
      const textFile = await ensureInputFile(options.workDir, sizeMiB, 'text');
      for (const variant of textVariants) rows.push(await runVariant(variant, 'text', textFile, true));
    }
    report(sizeMiB, rows);
    const dbdistRow = find(rows, 'dbdist-null') ?? find(rows, 'dbdist');
    if (dbdistRow?.outcome.ok) dbdistRssBySize.set(sizeMiB, dbdistRow.outcome.peakRssMiB);
  }
  const largest = Math.max(...options.sizesMiB);
  if (largest !== smallest) {
    const small = dbdistRssBySize.get(smallest);
    const large = dbdistRssBySize.get(largest);
    const growth = small && large ? large / small - 1 : undefined;
    console.log(
      `\nPeak RSS flat with size (dbdist-null): ${fixed(small)} MiB at ${smallest} MiB, ${fixed(large)} MiB at ${largest} MiB ` +
        `(${growth === undefined ? '-' : `${fixed(growth * 100)} %`}); < ${rssTargetMiB} MiB and within ${rssGrowthTarget * 100} %: ` +
        metOrNot(growth === undefined ? undefined : large! < rssTargetMiB && growth <= rssGrowthTarget),
    );
  }
}

/**
 * CPU cost per GiB of the pieces of work the pipeline does on every byte, in this process, one after another:
 * what the client CPU column of dbdist is made of. dbdist computes SHA-256 (the digest it reports), an MD5 of the
 * whole blob (Content-MD5) and an MD5 of every block (transactional, checked by the service), and copies each
 * block once into a contiguous buffer.
 */
function printCpuBreakdown(): void {
  const chunk = randomBytes(MiB);
  const chunks = 256; // 256 MiB of work per measurement
  const perGiB = (work: () => void) => {
    const start = process.cpuUsage();
    work();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1e6 / (chunks / 1024);
  };
  const hashing = (algorithm: string) => () => {
    const hash = createHash(algorithm);
    for (let i = 0; i < chunks; i++) hash.update(chunk);
    hash.digest();
  };
  const sha256 = perGiB(hashing('sha256'));
  const md5 = perGiB(hashing('md5'));
  const copy = perGiB(() => {
    for (let i = 0; i < chunks; i += 8) Buffer.concat(Array.from({ length: 8 }, () => chunk));
  });
  const aes = perGiB(() => {
    const cipher = createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12));
    for (let i = 0; i < chunks; i++) cipher.update(chunk);
    cipher.final();
  });
  printTable(
    'Client CPU per GiB of the per-byte work (this process, no I/O)',
    ['work', 'CPU s/GiB', 'MiB/s on one core'],
    [
      ['SHA-256', fixed(sha256, 2), fixed(1024 / sha256, 0)],
      ['MD5', fixed(md5, 2), fixed(1024 / md5, 0)],
      ['copy into 8 MiB blocks', fixed(copy, 2), fixed(1024 / copy, 0)],
      ['AES-256-GCM', fixed(aes, 2), fixed(1024 / aes, 0)],
      ['dbdist per byte before issue 16: SHA-256 + 2 x MD5 + copy', fixed(sha256 + 2 * md5 + copy, 2), fixed(1024 / (sha256 + 2 * md5 + copy), 0)],
      ['dbdist per byte now: SHA-256', fixed(sha256, 2), fixed(1024 / sha256, 0)],
    ],
  );
}

/**
 * Runs one variant in a child; uploads get a fresh in-memory Azurite (or, for "-null" variants, a fresh null
 * target) whose CPU time is measured around it.
 */
async function runVariant(variant: UploadVariant, content: Content, file: string, upload: boolean): Promise<Row> {
  process.stdout.write(`  ${variant.padEnd(22)} ${content.padEnd(6)} … `);
  let outcome: ChildOutcome<VariantResult | undefined>;
  let targetCpuSeconds: number | undefined;
  if (!upload) {
    outcome = await runInChild<VariantResult>(variantEntry, { variant, file } satisfies VariantInput);
  } else if (variant.endsWith('-null')) {
    const measured = await withFreshNullTarget((blob) => runInChild<VariantResult>(variantEntry, { variant, file, blob } satisfies VariantInput));
    outcome = measured.value;
    targetCpuSeconds = measured.serverCpuSeconds;
  } else {
    const ceilingBytes = Math.min(ceilingMiB * MiB, statSync(file).size);
    const measured = await withFreshAzurite((blob) =>
      runInChild<VariantResult>(variantEntry, { variant, file, blob, ceilingBytes } satisfies VariantInput),
    );
    outcome = measured.value;
    targetCpuSeconds = measured.azuriteCpuSeconds;
  }
  console.log(outcome.ok ? `${fixed(throughput(outcome.result))} MiB/s` : `FAILED: ${outcome.error}`);
  return { variant, content, outcome, ...(targetCpuSeconds !== undefined ? { targetCpuSeconds } : {}), load: loadavg()[0]! };
}

function throughput(result: VariantResult | undefined): number | undefined {
  return result ? result.sourceBytes / MiB / result.seconds : undefined;
}

function find(rows: Row[], variant: UploadVariant, content: Content = 'random'): Row | undefined {
  return rows.find((r) => r.variant === variant && r.content === content);
}

function mibPerSecond(rows: Row[], variant: UploadVariant, content: Content = 'random'): number | undefined {
  const row = find(rows, variant, content);
  return row?.outcome.ok ? throughput(row.outcome.result) : undefined;
}

function clientCpuPerGiB(row: Row | undefined): number | undefined {
  return row?.outcome.ok && row.outcome.result ? row.outcome.result.cpuSeconds / (row.outcome.result.sourceBytes / GiB) : undefined;
}

function report(sizeMiB: number, rows: Row[]): void {
  const limit = mibPerSecond(rows, 'hash-only');
  const uploadFile = mibPerSecond(rows, 'uploadFile');
  printTable(
    `Upload, ${sizeMiB} MiB file (MiB/s of source bytes; ratios from this run; CPU s per GiB of source)`,
    ['variant', 'content', 'MiB/s', 'seconds', 'stored MiB', 'client CPU s/GiB', 'client-bound MiB/s', 'target CPU s/GiB', 'peak RSS MiB', 'vs limit', 'vs uploadFile', 'load'],
    rows.map((row) => {
      const { variant, content, outcome } = row;
      if (!outcome.ok) {
        return [variant, content, 'FAILED', '-', '-', '-', '-', '-', fixed(outcome.peakRssMiB), '-', '-', fixed(row.load)];
      }
      const result = outcome.result!;
      const speed = throughput(result);
      const gib = result.sourceBytes / GiB;
      return [
        variant,
        content,
        fixed(speed),
        fixed(result.seconds, 2),
        result.storedBytes === undefined ? '-' : fixed(result.storedBytes / MiB),
        fixed(clientCpuPerGiB(row), 2),
        fixed(1024 / clientCpuPerGiB(row)!, 0),
        row.targetCpuSeconds === undefined ? '-' : fixed(row.targetCpuSeconds / gib, 2),
        fixed(outcome.peakRssMiB),
        ratio(speed, limit),
        ratio(speed, uploadFile),
        fixed(row.load),
      ];
    }),
  );
  for (const row of rows) if (!row.outcome.ok) console.log(`  ${row.variant} (${row.content}) failed: ${row.outcome.error}`);

  const dbdistRow = find(rows, 'dbdist');
  const dbdist = mibPerSecond(rows, 'dbdist');
  const ceiling = mibPerSecond(rows, 'azurite-ceiling');
  const hashRow = find(rows, 'hash-only');
  const shaMatches =
    dbdistRow?.outcome.ok && hashRow?.outcome.ok ? dbdistRow.outcome.result?.sourceSha256 === hashRow.outcome.result?.sourceSha256 : undefined;
  const dbdistRss = rows.filter((r) => r.variant.startsWith('dbdist') && r.outcome.ok);
  const worstRss = Math.max(...dbdistRss.map((r) => (r.outcome.ok ? r.outcome.peakRssMiB : 0)));
  const naive = find(rows, 'naive');

  console.log(`Targets at ${sizeMiB} MiB:`);
  console.log(`  dbdist >= 0.9 x uploadFile (wall clock): ${ratio(dbdist, uploadFile)} -> ${metOrNot(dbdist && uploadFile ? dbdist >= 0.9 * uploadFile : undefined)}`);
  console.log(`  dbdist >= 0.8 x hash-only limit (wall clock): ${ratio(dbdist, limit)} -> ${metOrNot(dbdist && limit ? dbdist >= 0.8 * limit : undefined)}`);
  if (ceiling !== undefined && limit !== undefined) {
    // When Azurite (plus TLS, on the same cores) takes bytes slower than a file can be hashed, uploads are
    // bound by Azurite and the fair yardstick for dbdist is Azurite's ceiling for the same requests.
    const azuriteBound = ceiling < limit;
    console.log(`  bottleneck: Azurite ceiling ${fixed(ceiling)} MiB/s vs hash-only ${fixed(limit)} MiB/s -> ${azuriteBound ? 'Azurite' : 'the client side'}`);
    if (azuriteBound) {
      console.log(`  dbdist >= 0.8 x Azurite's ceiling for the same requests: ${ratio(dbdist, ceiling)} -> ${metOrNot(dbdist ? dbdist >= 0.8 * ceiling : undefined)}`);
    }
  }
  const dbdistAzurite = dbdistRow?.targetCpuSeconds !== undefined && dbdistRow.outcome.ok ? dbdistRow.targetCpuSeconds / (dbdistRow.outcome.result!.sourceBytes / GiB) : undefined;
  const dbdistClient = clientCpuPerGiB(dbdistRow);
  if (dbdistAzurite !== undefined && dbdistClient !== undefined) {
    // Client and Azurite share this machine's cores: their CPU per GiB together bounds the rate.
    const cores = cpus().length;
    console.log(
      `  dbdist's client + Azurite CPU: ${fixed(dbdistClient + dbdistAzurite, 2)} s/GiB; on ${cores} shared cores that allows at most ~${fixed((cores * 1024) / (dbdistClient + dbdistAzurite), 0)} MiB/s (measured ${fixed(dbdist)})`,
    );
  }
  console.log(`  client CPU per GiB against Azurite, dbdist / uploadFile: ${ratio(clientCpuPerGiB(dbdistRow), clientCpuPerGiB(find(rows, 'uploadFile')))}; dbdist / hash-only: ${ratio(clientCpuPerGiB(dbdistRow), clientCpuPerGiB(hashRow))}`);
  // Issue 16's targets, on the null target (the client's own limit; Azurite's CPU no longer competes).
  const nullCpu = clientCpuPerGiB(find(rows, 'dbdist-null'));
  const uploadFileNullCpu = clientCpuPerGiB(find(rows, 'uploadFile-null'));
  const dbdistNull = mibPerSecond(rows, 'dbdist-null');
  console.log(
    `  client CPU per GiB on the null target, dbdist <= ${cpuVsUploadFileTarget} x uploadFile: ${fixed(nullCpu, 2)} vs ${fixed(uploadFileNullCpu, 2)} s/GiB = ` +
      `${ratio(nullCpu, uploadFileNullCpu)} -> ${metOrNot(nullCpu && uploadFileNullCpu ? nullCpu <= cpuVsUploadFileTarget * uploadFileNullCpu : undefined)}`,
  );
  console.log(
    `  dbdist on the null target >= ${nullVsHashOnlyTarget} x hash-only: ${fixed(dbdistNull)} vs ${fixed(limit)} MiB/s = ${ratio(dbdistNull, limit)} -> ` +
      metOrNot(dbdistNull && limit ? dbdistNull >= nullVsHashOnlyTarget * limit : undefined),
  );
  const nullOutcome = find(rows, 'dbdist-null')?.outcome;
  const nullShaMatches = nullOutcome?.ok && hashRow?.outcome.ok ? nullOutcome.result?.sourceSha256 === hashRow.outcome.result?.sourceSha256 : undefined;
  console.log(`  dbdist-null's sha256 equals the hash-only pass's: ${nullShaMatches === undefined ? 'not compared' : nullShaMatches ? 'yes' : 'NO'}`);
  console.log(`  dbdist peak RSS < ${rssTargetMiB} MiB (every dbdist variant here; worst ${fixed(worstRss)} MiB): ${metOrNot(dbdistRss.length ? worstRss < rssTargetMiB : undefined)}`);
  const naiveOutcome = naive?.outcome;
  console.log(`  naive: ${!naiveOutcome ? 'not run' : naiveOutcome.ok ? `peak RSS ${fixed(naiveOutcome.peakRssMiB)} MiB` : `failed: ${naiveOutcome.error}`}`);
  console.log(`  dbdist's sha256 equals the hash-only pass's: ${shaMatches === undefined ? 'not compared' : shaMatches ? 'yes' : 'NO'}`);
}
