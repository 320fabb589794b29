/**
 * Starts `mirrorbox serve` as a user runs it (bin/run.js), on an ephemeral port with a temp
 * store, and registers teardown (SIGKILL if still running, temp folder removed).
 */
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { spawnCli, type Spawned } from './process.js';
import { tempDir } from './tmp.js';

export interface ServeOptions {
  /** Store path; default `<dir>/disk0.img` in a fresh temp folder. */
  store?: string;
  /** --size for the store (default 64M); null leaves --size out (reuse an existing store). */
  size?: string | null;
  /** More `mirrorbox serve` flags. */
  args?: readonly string[];
}

export interface RunningServer {
  /** nbd://127.0.0.1:PORT/disk0 */
  uri: string;
  port: number;
  /** The temp folder the store lives in (removed at teardown). */
  dir: string;
  storePath: string;
  proc: Spawned;
  /** nbd://127.0.0.1:PORT/NAME */
  exportUri(name: string): string;
  /** Sends `signal` and waits for the process to end. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const readyLine = /^listening on nbd:\/\/127\.0\.0\.1:(\d+)\b/;

export async function startServer(t: Pick<TestContext, 'after'>, options: ServeOptions = {}): Promise<RunningServer> {
  const dir = options.store === undefined ? tempDir(t, 'mirrorbox-nbd-') : dirname(options.store);
  const storePath = options.store ?? join(dir, 'disk0.img');
  const size = options.size === undefined ? '64M' : options.size;
  const args = ['serve', '--store', storePath, ...(size === null ? [] : ['--size', size]), '--listen', '127.0.0.1:0', ...(options.args ?? [])];
  const proc = spawnCli(t, args);
  const match = await proc.waitForLine(readyLine);
  const port = Number(match[1]);
  const exportUri = (name: string): string => `nbd://127.0.0.1:${port}/${name}`;
  return {
    uri: exportUri('disk0'),
    port,
    dir,
    storePath,
    proc,
    exportUri,
    stop: async (signal = 'SIGTERM') => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
      return proc.exited;
    },
  };
}
