import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { TestContext } from 'node:test';
import { cliPath } from './paths.js';

export interface Spawned {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the first stdout line matching `pattern` (rejects on exit or timeout). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns a process whose output is collected; it is killed when the test ends. */
export function spawnCollected(
  t: Pick<TestContext, 'after'>,
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Spawned {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let out = '';
  let err = '';
  const lineWaiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const wake of lineWaiters) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const wake of lineWaiters) wake();
    });
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const waitForLine = (pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        lineWaiters.delete(check);
        reject(new Error(`timed out waiting for ${pattern} from ${command}; stdout: ${out}; stderr: ${err}`));
      }, timeoutMs);
      const check = (): void => {
        for (const line of out.split('\n')) {
          const match = pattern.exec(line);
          if (match) {
            clearTimeout(timer);
            lineWaiters.delete(check);
            resolve(match);
            return;
          }
        }
        if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          lineWaiters.delete(check);
          reject(new Error(`${command} exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}; stderr: ${err}`));
        }
      };
      lineWaiters.add(check);
      check();
    });
  return { child, stdout: () => out, stderr: () => err, waitForLine, exited };
}

/** Runs the mirrorbox CLI (bin/run.js) as a user would. */
export function spawnCli(t: Pick<TestContext, 'after'>, args: readonly string[], options: SpawnOptions = {}): Spawned {
  return spawnCollected(t, process.execPath, [cliPath, ...args], options);
}

/** Runs a command to completion and returns its output; never throws on a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { input?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A child may exit without reading its input: EPIPE then is not the test's failure.
    child.stdin!.on('error', () => {});
    child.stdin!.end(options.input ?? '');
  });
}
