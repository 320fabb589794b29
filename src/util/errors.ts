/**
 * One error class for expected failures, with a stable `code` that callers match on
 * (as undici and hypercore do). Bugs are not MirrorboxErrors: they are assertion
 * failures and crash the process, and the watchdog restarts it.
 *
 * Components define their own codes; the code is the contract, the message is for people.
 */
export class MirrorboxError extends Error {
  readonly code: string;
  /**
   * The reasons, one per line of a report: the message, unless the error has several (a config
   * with many problems gives one per problem).
   */
  readonly reasons: readonly string[];

  constructor(code: string, message: string, options?: { cause?: unknown; reasons?: readonly string[] }) {
    super(message, options);
    this.name = 'MirrorboxError';
    this.code = code;
    this.reasons = options?.reasons ?? [message];
  }
}

/** True when `err` carries the given stable code (works for Node's system errors too). */
export function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** The message of any thrown value, for one-line reports. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
