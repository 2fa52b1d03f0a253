/**
 * Compression stage of the upload pipeline: gzip through zlib; zstd through zlib where Node has it (≥ 22.15)
 * or else the `zstd` command-line tool on PATH. No npm zstd package: those download native binaries at
 * install time, which on-prem hosts often cannot.
 */
import { spawn, spawnSync } from 'node:child_process';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Compression } from '../../shared/contracts/common.js';
import { AppError } from '../../shared/errors.js';
import { BoundedText } from '../errors.js';

type ZstdFactory = (options?: { params?: Record<number, number> }) => Transform;
const nativeZstdCompress = (zlib as unknown as { createZstdCompress?: ZstdFactory }).createZstdCompress;
const nativeZstdDecompress = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress;

let zstdCliAvailable: boolean | undefined;

function hasZstdCli(): boolean {
  zstdCliAvailable ??= spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status === 0;
  return zstdCliAvailable;
}

/** How zstd would be done here, or why it cannot; `check` prints this. */
export function zstdSupport(): { ok: true; via: 'node' | 'cli' } | { ok: false; reason: string } {
  if (nativeZstdCompress) return { ok: true, via: 'node' };
  if (hasZstdCli()) return { ok: true, via: 'cli' };
  return {
    ok: false,
    reason: `zstd needs Node.js ≥ 22.15 (this is ${process.version}) or the zstd command-line tool on PATH`,
  };
}

/** Wraps a child process that filters stdin → stdout as a Duplex; a non-zero exit fails the stream. */
function processFilter(command: string, args: string[]): Duplex {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
  const stderr = new BoundedText(2000);
  child.stderr.on('data', (chunk: Buffer) => stderr.append(chunk));
  const output = new PassThrough();
  child.stdout.pipe(output, { end: false });
  let stdoutEnded = false;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const finish = () => {
    if (!stdoutEnded || !exit) return;
    if (exit.code === 0) output.end();
    else output.destroy(new Error(`${command} exited with ${exit.code ?? exit.signal}: ${stderr.toString()}`));
  };
  child.stdout.on('end', () => {
    stdoutEnded = true;
    finish();
  });
  child.on('close', (code, signal) => {
    exit = { code, signal };
    stdoutEnded = true;
    finish();
  });
  child.on('error', (error) => output.destroy(error));
  const duplex = Duplex.from({ writable: child.stdin, readable: output });
  // Tearing the pipeline down (an engine failed) must not leave the child running.
  duplex.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  return duplex;
}

/** A compressing Transform for `compression`, or undefined for `none`. */
export function createCompressStream(compression: Compression): Duplex | undefined {
  switch (compression) {
    case 'none':
      return undefined;
    case 'gzip':
      return zlib.createGzip({ level: 6 });
    case 'zstd': {
      const support = zstdSupport();
      if (!support.ok) throw new AppError('config_invalid', `Cannot compress with zstd: ${support.reason}`);
      return support.via === 'node' ? nativeZstdCompress!() : processFilter('zstd', ['-q', '-c', '-3', '-T0']);
    }
  }
}

/** The inverse of createCompressStream, for the `decrypt --decompress` command and tests. */
export function createDecompressStream(compression: Compression): Duplex | undefined {
  switch (compression) {
    case 'none':
      return undefined;
    case 'gzip':
      return zlib.createGunzip();
    case 'zstd': {
      if (nativeZstdDecompress) return nativeZstdDecompress();
      if (!hasZstdCli()) throw new AppError('config_invalid', `Cannot decompress zstd: ${(zstdSupport() as { reason: string }).reason}`);
      return processFilter('zstd', ['-q', '-d', '-c']);
    }
  }
}
