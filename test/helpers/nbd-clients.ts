/**
 * Running the real NBD clients (libnbd's nbdsh/nbdinfo/nbdcopy, qemu-img, qemu-io, fio) from tests.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { run } from './process.js';

/**
 * Environment for the clients: nbdsh runs `python3 -m nbd`, which needs Debian's python3 (with
 * python3-libnbd) ahead of any other python3 on PATH.
 */
export function clientEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `/usr/bin:${process.env['PATH'] ?? ''}`, ...extra };
}

/** Runs a client to completion; fails the test (showing its stderr) unless it exits 0. Returns stdout. */
export async function runOk(command: string, args: readonly string[], options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<string> {
  const result = await run(command, args, { env: clientEnv(options.env), ...(options.cwd ? { cwd: options.cwd } : {}), timeoutMs: options.timeoutMs ?? 120_000, input: options.input ?? '' });
  assert.equal(result.code, 0, `${command} ${args.join(' ')} exited ${result.code ?? result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result.stdout;
}

/**
 * Python run by nbdsh before each test script: `result(value)` reports a JSON value back to the
 * test; `errno_of(fn)` calls fn and returns the errno name libnbd raised ("EINVAL"...) or None.
 */
const nbdshPrelude = `
import os, json, hashlib
def result(value):
    print("RESULT " + json.dumps(value), flush=True)
def errno_of(fn):
    try:
        fn()
        return None
    except nbd.Error as e:
        return e.errno
def sha256(data):
    return hashlib.sha256(data).hexdigest()
`;

/**
 * Runs a Python script in nbdsh (`h` is a fresh, unconnected handle; `nbd` is the module) and
 * returns the value it passed to result(). Environment variables reach the script via os.environ.
 */
export async function nbdsh<T>(script: string, env: Record<string, string> = {}): Promise<T> {
  const stdout = await runOk('nbdsh', ['-c', `${nbdshPrelude}\n${script}`], { env });
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `nbdsh script reported no result; stdout: ${stdout}`);
  return JSON.parse(line.slice('RESULT '.length)) as T;
}

/** Writes `bytes` random bytes to `path` and returns them. */
export function randomFile(path: string, bytes: number): Buffer {
  const data = randomBytes(bytes);
  writeFileSync(path, data);
  return data;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
