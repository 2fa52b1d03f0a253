#!/usr/bin/env node
/**
 * dbdist-runner: the on-prem runner agent's command line.
 *
 *   start    the service loop (Windows service / systemd unit)
 *   check    tests every connection, one PASS/FAIL line each
 *   backup   one manual backup to a file or stdout
 *   decrypt  turns an encrypted download back into the backup
 *   verify   proves a download against its signed manifest, offline
 */
import { randomBytes } from 'node:crypto';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { compressions, type Compression } from '../shared/contracts/common.js';
import { errorMessage, isAppError } from '../shared/errors.js';
import { envVariables, loadRunnerConfig, localBackupConfigSchema } from './config.js';
import { isJobFailure } from './errors.js';

// The Azure SDKs, database drivers and pipeline are imported by the command that needs them: `--help` and
// config errors answer at once.
const service = () => import('./service.js');

/** Exit codes: 0 fine, 1 a check or the work failed, 2 bad configuration or usage. */
const EXIT_FAILED = 1;
const EXIT_CONFIG = 2;

/** Thrown to end a command with an exit code after its message was printed. */
class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

interface GlobalOptions {
  config?: string;
}

function configPathOf(command: Command): string | undefined {
  return command.optsWithGlobals<GlobalOptions>().config ?? process.env.DBDIST_RUNNER_CONFIG;
}

const envHelp = envVariables.map((v) => `  ${v.env.padEnd(48)} ${v.path}${v.secret ? '  (secret: environment only)' : ''}`).join('\n');

/**
 * Help and version text. `dbdist-runner --help | head` closes the pipe early: that is the reader's choice, not
 * a failure (as for any Unix tool), so the broken pipe is not thrown. Backup data to stdout is not written here.
 */
function writeHelp(text: string): void {
  process.stdout.once('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  process.stdout.write(text);
}

export function buildProgram(): Command {
  const program = new Command('dbdist-runner')
    .description(
      'The dbdist on-prem runner: takes backup jobs from Service Bus, backs up SQL Server / PostgreSQL databases ' +
        'and streams them to Blob Storage through a write-only SAS. Outbound connections only.',
    )
    .option('-c, --config <path>', 'JSON config file (default: $DBDIST_RUNNER_CONFIG); DBDIST_RUNNER_* variables override it')
    .showHelpAfterError('(run with --help for usage)')
    // Usage errors come back to main() (exit 2, like a bad config) instead of commander exiting with 1.
    .exitOverride()
    .configureOutput({ writeOut: writeHelp })
    .addHelpText(
      'after',
      `
Examples:
  dbdist-runner check --config /etc/dbdist-runner/config.json
  dbdist-runner start --config /etc/dbdist-runner/config.json
  dbdist-runner backup --engine postgres --database sales --out sales.dump.gz --compression gzip
  dbdist-runner decrypt --key-file /etc/dbdist-runner/backup.key --in sales.dump.gz.enc --out sales.dump.gz
  dbdist-runner verify --manifest sales.dump.gz.manifest.json --jwks-url https://<app>.azurewebsites.net/api/manifest-keys sales.dump.gz

Environment variables (each sets the config field named after it):
${envHelp}

Configuration reference and installation: docs/runner.md`,
    );

  program
    .command('start')
    .description('Run the service: receive backup jobs until SIGINT/SIGTERM (then drain within shutdownGraceSeconds).')
    .addHelpText('after', '\nExample:\n  dbdist-runner start --config /etc/dbdist-runner/config.json')
    .action(async (_options, command: Command) => {
      const config = loadRunnerConfig({ configPath: configPathOf(command) });
      const [{ runService }, { createLogger }] = await Promise.all([service(), import('./logger.js')]);
      throw new Exit(await runService(config, createLogger({ level: config.logLevel })));
    });

  program
    .command('check')
    .description('Test each connection (work dir, key, API token and call, Service Bus, SQL Server, PostgreSQL); exit 1 on any FAIL.')
    .option('--timeout <seconds>', 'time allowed for each check', positiveSeconds, 30)
    .addHelpText('after', '\nExample:\n  dbdist-runner check --config /etc/dbdist-runner/config.json')
    .action(async (options: { timeout: number }, command: Command) => {
      const config = loadRunnerConfig({ configPath: configPathOf(command) });
      const [{ apiTokenProvider, buildEngines, buildServiceBusClient, entraCredential }, { RunnerApiClient }, { formatResults, runChecks }] =
        await Promise.all([service(), import('./api/client.js'), import('./check.js')]);
      const credential = entraCredential(config.entra);
      const tokens = apiTokenProvider(config);
      const serviceBus = buildServiceBusClient(config, credential);
      const engines = buildEngines(config, credential);
      const api = new RunnerApiClient({ baseUrl: config.api.baseUrl, tokens, retry: { maxAttempts: 2, baseDelayMs: 500, maxDelayMs: 1000 } });
      try {
        const results = await runChecks(config, { tokens, api, serviceBus, engines, timeoutMs: options.timeout * 1000 });
        process.stdout.write(`${formatResults(results)}\n`);
        if (results.some((r) => r.status === 'FAIL')) throw new Exit(EXIT_FAILED);
      } finally {
        await Promise.allSettled([serviceBus.close(), ...Object.values(engines).map((e) => e.close?.())]);
      }
    });

  program
    .command('backup')
    .description('Take one backup of a database now, to a local file or stdout (no Service Bus, no API, no upload).')
    .addOption(new Option('--engine <engine>', 'which configured server').choices(['sqlserver', 'postgres']).makeOptionMandatory())
    .requiredOption('--database <name>', 'database name, exactly as the server knows it')
    .option('--out <path>', 'output file, or - for stdout', '-')
    .addOption(new Option('--compression <kind>', 'compression stage (default: compressionDefault from the config)').choices([...compressions]))
    .option('--recipient <age1…>', 'encrypt with age to this public key (repeatable)', (value: string, list: string[] = []) => [...list, value])
    .addHelpText(
      'after',
      '\nExamples:\n  dbdist-runner backup --engine postgres --database sales --out sales.dump\n' +
        '  dbdist-runner backup --engine sqlserver --database Sales --compression zstd --recipient age1… --out Sales.bak.zst.age\n' +
        '  dbdist-runner backup --engine postgres --database sales | pg_restore --list',
    )
    .action(async (options: { engine: 'sqlserver' | 'postgres'; database: string; out: string; compression?: Compression; recipient?: string[] }, command: Command) => {
      const config = loadRunnerConfig({ configPath: configPathOf(command), schema: localBackupConfigSchema });
      const [{ buildEngines }, { createLogger }, { writeBackup }, { createWriteStream, renameSync, rmSync }] = await Promise.all([
        service(),
        import('./logger.js'),
        import('./pipeline/upload.js'),
        import('node:fs'),
      ]);
      const toStdout = options.out === '-';
      const logger = createLogger({ level: config.logLevel, fd: 2 });
      const engine = buildEngines(config)[options.engine];
      if (!engine) {
        process.stderr.write(`error: no ${options.engine} connection in the config (${options.engine === 'sqlserver' ? 'sqlServer' : 'postgres'})\n`);
        throw new Exit(EXIT_CONFIG);
      }
      const compression = options.compression ?? config.compressionDefault;
      const aborter = new AbortController();
      const onSignal = () => aborter.abort(new Error('interrupted'));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const partPath = `${options.out}.part-${randomBytes(4).toString('hex')}`;
      const backup = await engine.backup(
        { jobId: 'manual', databaseName: options.database, compression },
        { signal: aborter.signal, attemptId: randomBytes(8).toString('hex'), onProgress: (percent) => logger.info({ percent }, 'progress') },
      );
      try {
        const facts = await writeBackup({
          source: backup.stream,
          sourceDone: backup.done,
          compression,
          ...(options.recipient ? { ageRecipients: options.recipient } : {}),
          destination: toStdout ? process.stdout : createWriteStream(partPath),
          signal: aborter.signal,
        });
        if (!toStdout) renameSync(partPath, options.out);
        logger.info({ database: options.database, out: options.out, ...facts }, 'backup written');
        if (!toStdout) process.stderr.write(`${options.out}: ${facts.sizeBytes} bytes, sha256 ${facts.sha256}\n`);
      } catch (error) {
        if (!toStdout) rmSync(partPath, { force: true });
        throw error;
      } finally {
        await backup.cleanup();
        await engine.close?.();
      }
    });

  program
    .command('decrypt')
    .description('Decrypt a downloaded copy: age files (.age) with an age identity, old runner-key files (.enc) with the key file.')
    .option('-i, --identity <path>', 'age identity file (age-keygen output), for .age copies')
    .option('--key-file <path>', '32-byte runner key (raw or 64 hex characters), for old .enc (DBDE) copies')
    .requiredOption('--in <path>', 'encrypted file, or - for stdin')
    .requiredOption('--out <path>', 'output file, or - for stdout')
    .addOption(new Option('--decompress <kind>', 'also decompress (gzip or zstd)').choices(['gzip', 'zstd']))
    .addHelpText(
      'after',
      '\nExamples:\n  dbdist-runner decrypt -i key.txt --in Sales.bak.gz.age --decompress gzip --out Sales.bak\n' +
        '  dbdist-runner decrypt --key-file backup.key --in Sales.bak.gz.enc --out Sales.bak.gz\n' +
        'The output is written to a temporary file and renamed only when every chunk authenticated.\n' +
        'age copies open with the age CLI as well: age -d -i key.txt Sales.bak.gz.age | gunzip > Sales.bak',
    )
    .action(async (options: { identity?: string; keyFile?: string; in: string; out: string; decompress?: 'gzip' | 'zstd' }) => {
      if (!options.identity === !options.keyFile) {
        process.stderr.write('error: give exactly one of --identity (age copies) or --key-file (old .enc copies)\n');
        throw new Exit(EXIT_CONFIG);
      }
      const [crypto, age, { createDecompressStream }, { createReadStream, createWriteStream, renameSync, rmSync }, { pipeline }] = await Promise.all([
        import('./pipeline/crypto.js'),
        import('./pipeline/age.js'),
        import('./pipeline/compression.js'),
        import('node:fs'),
        import('node:stream/promises'),
      ]);
      const decrypt = options.identity
        ? age.createAgeDecryptStream(age.readIdentityFile(options.identity))
        : crypto.createDecryptStream(crypto.readKeyFile(options.keyFile!));
      const toStdout = options.out === '-';
      const partPath = `${options.out}.part-${randomBytes(4).toString('hex')}`;
      const decompress = options.decompress ? createDecompressStream(options.decompress) : undefined;
      try {
        await pipeline([
          options.in === '-' ? process.stdin : createReadStream(options.in),
          decrypt,
          ...(decompress ? [decompress] : []),
          toStdout ? process.stdout : createWriteStream(partPath),
        ]);
        if (!toStdout) renameSync(partPath, options.out);
      } catch (error) {
        if (!toStdout) rmSync(partPath, { force: true });
        throw error;
      }
    });

  program
    .command('verify')
    .description(
      'Prove a downloaded backup offline against its signed manifest: signature (published keys), size and SHA-256. ' +
        'Exit 0 proved, 1 a check failed (the message says which), 2 usage.',
    )
    .argument('<file>', 'the downloaded backup')
    .requiredOption('--manifest <path>', "the backup's <name>.manifest.json")
    .option('--keys <path>', 'JWKS file with the published manifest keys (saved from GET /api/manifest-keys)')
    .option('--jwks-url <url>', 'fetch the published keys from this URL (GET /api/manifest-keys)')
    .addHelpText(
      'after',
      '\nExamples:\n  dbdist-runner verify --manifest Sales-20261201-0900.bak.gz.manifest.json --keys manifest-keys.json Sales-20261201-0900.bak.gz\n' +
        '  dbdist-runner verify --manifest x.dump.manifest.json --jwks-url https://dbdist.example.com/api/manifest-keys x.dump\n' +
        'Verify the downloaded file as it was stored (before decrypting or decompressing it).',
    )
    .action(async (file: string, options: { manifest: string; keys?: string; jwksUrl?: string }) => {
      if (Boolean(options.keys) === Boolean(options.jwksUrl)) {
        process.stderr.write('error: give exactly one of --keys <path> or --jwks-url <url>\n');
        throw new Exit(EXIT_CONFIG);
      }
      const [{ verifyDownload, keysFromJwks, fetchJwks }, { readFileSync, existsSync }] = await Promise.all([import('./verify.js'), import('node:fs')]);
      for (const path of [file, options.manifest, ...(options.keys ? [options.keys] : [])]) {
        if (!existsSync(path)) {
          process.stderr.write(`error: ${path} does not exist\n`);
          throw new Exit(EXIT_CONFIG);
        }
      }
      const keys = options.keys ? keysFromJwks(readFileSync(options.keys, 'utf8'), options.keys) : await fetchJwks(options.jwksUrl!);
      const outcome = await verifyDownload({ file, manifestText: readFileSync(options.manifest, 'utf8'), keys });
      process.stdout.write(`${outcome.lines.join('\n')}\n`);
      if (!outcome.proved) throw new Exit(EXIT_FAILED);
    });

  return program;
}

function positiveSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError('must be a positive number of seconds.');
  return seconds;
}

/** Runs the CLI; returns the exit code. Errors become one clear line (and field list), never a stack trace. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof Exit) return error.code;
    // Commander has printed the message (or the help/version) already.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_CONFIG;
    if (isAppError(error) && error.code === 'config_invalid') {
      if (error.fieldErrors.length === 0) process.stderr.write(`error: ${error.message}\n`);
      else {
        process.stderr.write(`error: invalid runner config (${String(error.details?.where ?? 'config')}):\n`);
        for (const field of error.fieldErrors) process.stderr.write(`  - ${field.field}: ${field.message}\n`);
      }
      return EXIT_CONFIG;
    }
    if (isJobFailure(error)) {
      process.stderr.write(`error: ${error.code}: ${error.message}\n`);
      return EXIT_FAILED;
    }
    process.stderr.write(`error: ${errorMessage(error)}\n`);
    return EXIT_FAILED;
  }
}

// Run when executed (tsx runner-agent/cli.ts, node dist/runner-agent/cli.js, the dbdist-runner bin), not when imported.
const invokedAs = process.argv[1] ?? '';
if (/(?:^|[\\/])(?:cli\.(?:ts|js)|dbdist-runner)$/.test(invokedAs)) {
  main(process.argv).then((code) => {
    process.exitCode = code;
    // Exit even if a library left a handle open (a socket in a pool); output is flushed by then.
    setTimeout(() => process.exit(code), 2000).unref();
  });
}
