/**
 * Helpers for the watchdog tests: real watchdog processes (the CLI, as a user runs it) guarding
 * real fixture processes (test/fixtures/watchdog-service.ts), and reading their journal.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { repoRoot } from './paths.js';
import { spawnCli, type Spawned } from './process.js';
import { parseJournalLine, type JournalEntry } from '../../src/watchdog/journal.js';
import { readStateFile, statePaths } from '../../src/watchdog/state.js';
import { groupMembers, readProcStat } from '../../src/watchdog/proc-stat.js';
import { spareName } from '../../src/watchdog/process-handle.js';

export const servicePath = join(repoRoot, 'dist', 'test', 'fixtures', 'watchdog-service.js');

/** A port that was free a moment ago (the test then configures a process to listen on it). */
export { freePort } from '../../bench/lib/procs.js';

/** argv for the fixture service, as YAML flow sequence text. */
export function serviceCommand(name: string, ...extra: string[]): string {
  return JSON.stringify([process.execPath, servicePath, '--name', name, ...extra]);
}

export function writeConfig(dir: string, yaml: string, file = 'watchdog.yaml'): string {
  const path = join(dir, file);
  writeFileSync(path, yaml);
  return path;
}

/**
 * A temp folder for one watchdog test (short: the control socket path must fit in 107 bytes).
 * When the test ends, the watchdog recorded there and every process group it recorded are
 * killed, then the folder is removed.
 */
export function watchdogDir(t: Pick<TestContext, 'after'>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mbwd-'));
  t.after(() => {
    killRecorded(join(dir, 'var'));
    killByCwd(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface WatchdogApp {
  dir: string;
  config: string;
  stateDir: string;
  journal: string;
}

/**
 * A temp folder (see watchdogDir) with a config: `journal: ./var/watchdog.jsonl` (so the state
 * folder is ./var) and `checkIntervalMs: 50`, then `yaml`.
 */
export function watchdogApp(t: Pick<TestContext, 'after'>, yaml: string): WatchdogApp {
  const dir = watchdogDir(t);
  const config = writeConfig(dir, `journal: ./var/watchdog.jsonl\ncheckIntervalMs: 50\n${yaml}`);
  const stateDir = join(dir, 'var');
  return { dir, config, stateDir, journal: join(stateDir, 'watchdog.jsonl') };
}

export interface RunningWatchdog {
  proc: Spawned;
  config: string;
  stateDir: string;
  journal: string;
}

/**
 * Starts `mirrorbox watchdog run CONFIG` and waits until it reports the application up. When the
 * test ends, the watchdog is stopped and any process group it left is killed.
 */
export async function startWatchdog(t: Pick<TestContext, 'after'>, config: string, stateDir: string, journal: string, readyTimeoutMs = 30_000): Promise<RunningWatchdog> {
  const proc = spawnCli(t, ['watchdog', 'run', config], { env: { ...process.env, MIRRORBOX_LOG_LEVEL: 'warn' } });
  await proc.waitForLine(/^watchdog running/, readyTimeoutMs);
  return { proc, config, stateDir, journal };
}

/** SIGKILL to the watchdog and every process group its state file records (test clean-up). */
export function killRecorded(stateDir: string): void {
  const path = statePaths(stateDir).state;
  if (!existsSync(path)) return;
  let state;
  try {
    state = readStateFile(path);
  } catch {
    return;
  }
  if (state && alive(state.watchdog.pid)) {
    try {
      process.kill(state.watchdog.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const p of state?.processes ?? []) {
    if (p.pgid === null || p.startTicks === null) continue;
    for (const pid of groupMembers(p.pgid, p.startTicks)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** SIGKILL to every process whose working folder is `dir` or below (supervised processes run there). */
export function killByCwd(dir: string): void {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${name}/cwd`);
    } catch {
      continue;
    }
    if (cwd === dir || cwd.startsWith(`${dir}/`)) {
      try {
        process.kill(Number(name), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

/** Live spare shells (see Spare in process-handle.ts) whose working folder is `dir`. */
export function sparesIn(dir: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/cwd`) !== dir) continue;
      if (readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').includes(spareName) && alive(Number(name))) found.push(Number(name));
    } catch {
      continue;
    }
  }
  return found;
}

export function readEntries(journal: string): JournalEntry[] {
  if (!existsSync(journal)) return [];
  return readFileSync(journal, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map(parseJournalLine);
}

/** Polls the journal until `predicate` holds for its entries; returns them. */
export async function waitForJournal(journal: string, predicate: (entries: JournalEntry[]) => boolean, timeoutMs = 20_000, what = 'journal condition'): Promise<JournalEntry[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entries = readEntries(journal);
    if (predicate(entries)) return entries;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; journal:\n${entries.map((e) => `${e.event} ${e.process ?? '-'} ${e.rung ?? '-'} ${e.cause ?? ''}`).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** "event:process" pairs of the entries, for comparing order. */
export function steps(entries: readonly JournalEntry[], events: readonly string[] = ['start', 'ready', 'stop', 'kill', 'exit', 'fail']): string[] {
  return entries.filter((e) => events.includes(e.event)).map((e) => `${e.event}:${e.process ?? '-'}`);
}

/** Is this pid a live (non-zombie) process? */
export function alive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

export async function waitUntil(condition: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
