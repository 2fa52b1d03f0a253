/**
 * Why a backup attempt failed, in the form the runner reports it (`failed` event: code + message) and decides
 * what to do with the message: a `JobFailure` is final for this job (report it, complete the message); an
 * infrastructure failure marked `transient` is worth another delivery (abandon the message).
 */
export class JobFailure extends Error {
  override readonly name = 'JobFailure';
  /** Short machine-readable reason, e.g. `permission_denied`, `database_not_found`, `engine_exit`. */
  readonly code: string;
  /** True when another attempt may succeed without anyone changing anything (network, service busy). */
  readonly transient: boolean;

  constructor(code: string, message: string, options: { transient?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.transient = options.transient ?? false;
  }
}

export function isJobFailure(error: unknown): error is JobFailure {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'JobFailure';
}

/** Keeps the last `limit` characters of a stream of text (engine stderr): memory stays bounded. */
export class BoundedText {
  private text = '';
  private dropped = false;
  constructor(private readonly limit = 8000) {}

  append(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.limit) {
      this.text = this.text.slice(this.text.length - this.limit);
      this.dropped = true;
    }
  }

  toString(): string {
    return (this.dropped ? '…' : '') + this.text.trim();
  }
}
