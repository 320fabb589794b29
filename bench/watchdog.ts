/**
 * npm run bench:watchdog — how fast a killed process is noticed and back in service, for the
 * mirrorbox watchdog and for supervisord (Debian's `supervisor` package), in the same run.
 *
 * Method
 * - Both supervisors run side by side for the whole run, each guarding one process:
 *     /bin/sh -c 'echo "TAG $$" >FIFO; echo up; exec sleep 100000'
 *   It announces itself on a FIFO the benchmark holds open (the same external "it is running"
 *   mark for both), prints "up", and becomes a sleep with the same pid.
 * - mirrorbox: `mirrorbox watchdog run` (the real CLI process), readiness { stdout: "^up$" },
 *   ladder [restart-failed], stableMs 0, nice −10 (its processes run at the base nice).
 *   supervisord, also at nice −10 (`nice -n -10`; its processes inherit it): its own config, socket, log and pid file
 *   in a temp folder, autorestart=true, startsecs=0 (its fastest setting); started by this
 *   script and stopped by PID.
 * - One kill = SIGKILL to the current pid at t0 (this process's clock: performance.timeOrigin
 *   + now(), µs), then:
 *     detected   mirrorbox: the journal's `exit` event time; supervisord: its log's "exited:"
 *                line (ms resolution)
 *     ready      mirrorbox: the journal's `ready` event time (the "up" line seen);
 *                supervisord: its log's "entered RUNNING state" line (it has no readiness)
 *     running    both: when the new process's FIFO mark reached this process
 * - Each kill comes settleMs + a uniformly random 0–1 s after the process is back (see
 *   jitterMsMax: a periodic supervisor must be caught at every phase of its loop).
 * - Rounds alternate (mirrorbox, supervisord, mirrorbox, ...), `killsPerRound` kills each;
 *   ≥ 200 kills per supervisor in total. p50/p99 are over all kills pooled; the JSON keeps
 *   every sample and each round's p50.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, existsSync, constants as fsConstants } from 'node:fs';
import { Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from './lib/stats.js';
import { writeReport, type BenchRow } from './lib/report.js';
import { nowUs, parseJournalLine, type JournalEntry } from '../src/watchdog/journal.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cliPath = join(repoRoot, 'bin', 'run.js');
const resultsPath = join(repoRoot, 'bench', 'results', 'watchdog.json');

const roundsPerSupervisor = Number(process.env['BENCH_WATCHDOG_ROUNDS'] ?? '8');
const killsPerRound = Number(process.env['BENCH_WATCHDOG_KILLS'] ?? '25');
/** Quiet time after a process is back before the next kill (lets journal/state writes settle). */
const settleMs = 50;
/**
 * Plus a uniformly random wait in [0, jitterMsMax): supervisord acts on a 1 s loop, so kills at a
 * fixed delay after its last restart would measure one phase of that loop only (we saw p50
 * "detected" of 2 ms in one run and 1,001 ms in another). Same jitter for both supervisors.
 */
const jitterMsMax = 1000;
/** A kill that is not followed by a new process within this time fails the benchmark. */
const restartTimeoutMs = 10_000;
const targets = { readyP50Ms: 5, readyP99Ms: 20 };
/**
 * Both supervisors run at nice −10, as a watchdog is deployed (appliance/watchdog.yaml): this
 * 2-core machine is shared, and at nice 0 a compiler next door put 36 ms into our p99.
 */
const niceBoth = -10;

interface Sample {
  detectedMs: number;
  readyMs: number;
  runningMs: number;
}

/** Reads "TAG PID" lines from the FIFO; resolves waiters as new pids arrive. */
class MarkReader {
  private readonly latest = new Map<string, { pid: number; atUs: number }>();
  private waiters: (() => void)[] = [];
  private buffered = '';
  private readonly socket: Socket;

  constructor(fifo: string) {
    // O_RDWR: we are also a writer, so the FIFO never reports EOF between processes.
    const fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
    this.socket = new Socket({ fd, readable: true, writable: false });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      const atUs = nowUs();
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const [tag, pid] = this.buffered.slice(0, nl).split(' ');
        this.buffered = this.buffered.slice(nl + 1);
        this.latest.set(tag!, { pid: Number(pid), atUs });
      }
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    });
  }

  current(tag: string): { pid: number; atUs: number } | undefined {
    return this.latest.get(tag);
  }

  /** Resolves with the first mark of `tag` whose pid differs from `oldPid`. */
  async next(tag: string, oldPid: number): Promise<{ pid: number; atUs: number }> {
    const deadline = Date.now() + restartTimeoutMs;
    for (;;) {
      const m = this.latest.get(tag);
      if (m && m.pid !== oldPid) return m;
      if (Date.now() > deadline) throw new Error(`${tag}: no new process within ${restartTimeoutMs} ms of the kill`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function serviceCommand(tag: string, fifo: string): string {
  return `echo "${tag} $$" >${fifo}; echo up; exec sleep 100000`;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = restartTimeoutMs): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

// ---------------------------------------------------------------------------------------------
// mirrorbox

class Ours {
  readonly tag = 'ours';
  private child: ChildProcess | undefined;
  private readonly journal: string;
  private readonly config: string;
  private journalOffset = 0;
  private entries: JournalEntry[] = [];

  constructor(dir: string, fifo: string) {
    this.journal = join(dir, 'ours', 'watchdog.jsonl');
    this.config = join(dir, 'ours.yaml');
    writeFileSync(
      this.config,
      [
        'name: bench',
        `nice: ${niceBoth}`,
        'journal: ./ours/watchdog.jsonl',
        'ladder: [restart-failed]',
        'stableMs: 0',
        'processes:',
        '  - name: svc',
        `    command: ["/bin/sh", "-c", ${JSON.stringify(serviceCommand(this.tag, fifo))}]`,
        '    ready: { stdout: "^up$" }',
        '    stop: { signal: SIGTERM, timeoutMs: 1000 }',
        '',
      ].join('\n'),
    );
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [cliPath, 'watchdog', 'run', '--quiet', this.config], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MIRRORBOX_LOG_LEVEL: 'warn' } });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        if (out.includes('watchdog running')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`mirrorbox watchdog exited (${code}) before running`)));
    });
  }

  private readNew(): void {
    if (!existsSync(this.journal)) return;
    const buf = readFileSync(this.journal);
    const text = buf.subarray(this.journalOffset).toString('utf8');
    const end = text.lastIndexOf('\n');
    if (end < 0) return;
    for (const line of text.slice(0, end).split('\n')) if (line !== '') this.entries.push(parseJournalLine(line));
    this.journalOffset += Buffer.byteLength(text.slice(0, end + 1));
  }

  /** Journal times (µs) of the exit of `oldPid` and the ready of `newPid`. */
  async times(oldPid: number, newPid: number): Promise<{ detectedUs: number; readyUs: number }> {
    const find = (event: string, pid: number): JournalEntry | undefined => {
      this.readNew();
      return this.entries.find((e) => e.event === event && e.pid === pid);
    };
    const exit = await waitFor(`journal exit of ${oldPid}`, () => find('exit', oldPid));
    const ready = await waitFor(`journal ready of ${newPid}`, () => find('ready', newPid));
    return { detectedUs: exit.timeUs, readyUs: ready.timeUs };
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child!.once('exit', r));
    this.child.kill('SIGTERM'); // stops the application in reverse order, then exits
    await exited;
  }
}

// ---------------------------------------------------------------------------------------------
// supervisord

/** supervisord's log stamps have millisecond resolution. */
const logResolutionUs = 1000;

class Supervisord {
  readonly tag = 'supervisord';
  private child: ChildProcess | undefined;
  private readonly log: string;
  private readonly config: string;
  private readonly pidfile: string;

  constructor(dir: string, fifo: string) {
    const d = join(dir, 'sup');
    mkdirSync(d, { recursive: true });
    this.log = join(d, 'supervisord.log');
    this.config = join(d, 'supervisord.conf');
    this.pidfile = join(d, 'supervisord.pid');
    writeFileSync(
      this.config,
      [
        '[unix_http_server]',
        `file=${join(d, 'supervisor.sock')}`,
        '[supervisord]',
        `logfile=${this.log}`,
        `pidfile=${this.pidfile}`,
        `childlogdir=${d}`,
        'nodaemon=true',
        'loglevel=info',
        'user=root',
        '[rpcinterface:supervisor]',
        'supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface',
        '[supervisorctl]',
        `serverurl=unix://${join(d, 'supervisor.sock')}`,
        '[program:svc]',
        `command=/bin/sh -c '${serviceCommand(this.tag, fifo)}'`,
        'autorestart=true',
        'startsecs=0',
        'startretries=1000000',
        `stdout_logfile=${join(d, 'svc.log')}`,
        'redirect_stderr=true',
        '',
      ].join('\n'),
    );
  }

  async start(): Promise<void> {
    // The same priority as ours (its children inherit it: if anything, that favours supervisord).
    this.child = spawn('nice', ['-n', String(niceBoth), 'supervisord', '-c', this.config, '-n'], { stdio: 'ignore' });
    this.child.once('error', (err) => {
      throw new Error(`cannot start supervisord (apt-get install supervisor): ${err.message}`);
    });
  }

  /**
   * "2026-11-26 15:22:56,693 INFO exited: svc ..." → epoch µs (the log uses local time). The
   * stamp is truncated to the millisecond, so the event happened in [t, t + 1 ms): we take the
   * middle, t + 0.5 ms (else supervisord's latencies would read up to 1 ms low).
   */
  private logTimes(pattern: RegExp): number[] {
    if (!existsSync(this.log)) return [];
    const out: number[] = [];
    for (const line of readFileSync(this.log, 'utf8').split('\n')) {
      if (!pattern.test(line)) continue;
      const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3}) /.exec(line);
      if (m) out.push(new Date(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!).getTime() * 1000 + logResolutionUs / 2);
    }
    return out;
  }

  async times(oldPid: number, newPid: number, killUs: number): Promise<{ detectedUs: number; readyUs: number }> {
    void oldPid;
    const after = (us: number[]): number | undefined => us.find((t) => t >= killUs - logResolutionUs);
    const detectedUs = await waitFor('supervisord "exited:" log line', () => after(this.logTimes(/ exited: svc \(terminated by SIGKILL/)));
    const runningPattern = / success: svc entered RUNNING state/;
    const spawnedPattern = new RegExp(`spawned: 'svc' with pid ${newPid}\\b`);
    const spawnedUs = await waitFor('supervisord "spawned:" log line', () => after(this.logTimes(spawnedPattern)));
    const readyUs = await waitFor('supervisord RUNNING log line', () => this.logTimes(runningPattern).find((t) => t >= spawnedUs));
    return { detectedUs, readyUs };
  }

  async stop(): Promise<void> {
    const pid = existsSync(this.pidfile) ? Number(readFileSync(this.pidfile, 'utf8')) : this.child?.pid;
    if (!pid || !this.child || this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child!.once('exit', r));
    process.kill(pid, 'SIGTERM'); // supervisord stops its programs, then exits
    await exited;
  }

  get version(): string {
    return execFileSync('supervisord', ['--version'], { encoding: 'utf8' }).trim();
  }
}

// ---------------------------------------------------------------------------------------------

type System = Ours | Supervisord;

async function killOnce(system: System, marks: MarkReader): Promise<Sample> {
  const current = await waitFor(`${system.tag} running`, () => marks.current(system.tag));
  const killUs = nowUs();
  process.kill(current.pid, 'SIGKILL');
  const next = await marks.next(system.tag, current.pid);
  const t = system instanceof Supervisord ? await system.times(current.pid, next.pid, killUs) : await system.times(current.pid, next.pid);
  return {
    detectedMs: (t.detectedUs - killUs) / 1000,
    readyMs: (t.readyUs - killUs) / 1000,
    runningMs: (next.atUs - killUs) / 1000,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mbbench-'));
  const fifo = join(dir, 'marks');
  execFileSync('mkfifo', [fifo]);
  const marks = new MarkReader(fifo);
  const ours = new Ours(dir, fifo);
  const sup = new Supervisord(dir, fifo);
  const samples: Record<string, Sample[]> = { ours: [], supervisord: [] };
  const roundP50: Record<string, { detected: number[]; ready: number[]; running: number[] }> = {
    ours: { detected: [], ready: [], running: [] },
    supervisord: { detected: [], ready: [], running: [] },
  };
  try {
    await ours.start();
    await sup.start();
    await waitFor('both supervised processes up', () => (marks.current('ours') && marks.current('supervisord') ? true : undefined), 20_000);
    process.stderr.write(`watchdog benchmark: ${roundsPerSupervisor} alternating rounds × ${killsPerRound} kills per supervisor\n`);
    for (let round = 0; round < roundsPerSupervisor; round += 1) {
      for (const system of [ours, sup] as System[]) {
        const got: Sample[] = [];
        for (let k = 0; k < killsPerRound; k += 1) {
          await new Promise((r) => setTimeout(r, settleMs + Math.random() * jitterMsMax));
          got.push(await killOnce(system, marks));
        }
        samples[system.tag]!.push(...got);
        const r = roundP50[system.tag]!;
        r.detected.push(percentile(got.map((s) => s.detectedMs), 50));
        r.ready.push(percentile(got.map((s) => s.readyMs), 50));
        r.running.push(percentile(got.map((s) => s.runningMs), 50));
        process.stderr.write(
          `round ${round + 1}/${roundsPerSupervisor} ${system.tag.padEnd(11)} p50 detected ${r.detected.at(-1)!.toFixed(2)} ms, ready ${r.ready.at(-1)!.toFixed(2)} ms\n`,
        );
      }
    }
  } finally {
    await ours.stop().catch(() => undefined);
    await sup.stop().catch(() => undefined);
    marks.close();
  }
  const supVersion = sup.version;
  if (process.env['BENCH_WATCHDOG_KEEP'] === '1') process.stderr.write(`kept ${dir} (logs, journal, configs)\n`);
  else rmSync(dir, { recursive: true, force: true });

  const pct = (tag: string, key: keyof Sample, p: number): number => percentile(samples[tag]!.map((s) => s[key]), p);
  const row = (name: string, key: keyof Sample, p: number, roundKey: 'detected' | 'ready' | 'running'): BenchRow => ({
    name,
    unit: 'ms',
    ours: pct('ours', key, p),
    peer: pct('supervisord', key, p),
    oursRounds: p === 50 ? roundP50['ours']![roundKey] : [],
    peerRounds: p === 50 ? roundP50['supervisord']![roundKey] : [],
    lowerIsBetter: true,
  });
  const rows = [
    row('kill → detected p50', 'detectedMs', 50, 'detected'),
    row('kill → detected p99', 'detectedMs', 99, 'detected'),
    row('kill → restarted and ready p50', 'readyMs', 50, 'ready'),
    row('kill → restarted and ready p99', 'readyMs', 99, 'ready'),
    row('kill → new process running p50', 'runningMs', 50, 'running'),
    row('kill → new process running p99', 'runningMs', 99, 'running'),
  ];
  const readyP50 = rows[2]!.ours;
  const readyP99 = rows[3]!.ours;
  const met = readyP50 <= targets.readyP50Ms && readyP99 <= targets.readyP99Ms;
  writeReport(resultsPath, {
    benchmark: 'watchdog: kill → detected / restarted',
    peerName: 'supervisord',
    date: new Date().toISOString(),
    host: { cpus: cpus().length, node: process.version },
    notes: [
      `${samples['ours']!.length} kills of mirrorbox's process and ${samples['supervisord']!.length} of supervisord's, in ${roundsPerSupervisor} alternating rounds; percentiles over all kills pooled; *Rounds hold each round's p50.`,
      'detected: mirrorbox journal "exit" event (µs) / supervisord log "exited:" line (ms stamps, taken as their middle: +0.5 ms).',
      'restarted and ready: mirrorbox journal "ready" event (stdout readiness "^up$") / supervisord log "entered RUNNING state" (startsecs=0, no readiness check).',
      'new process running: the replacement process\'s FIFO mark reached the benchmark (same for both).',
      `each kill ${settleMs} ms + uniform random 0–${jitterMsMax} ms after the process was back, so supervisord's 1 s loop is sampled at every phase.`,
      `peer: ${supVersion} (Debian package supervisor), its own config and socket in a temp folder, stopped by PID.`,
      `both supervisors at nice ${niceBoth} (mirrorbox: config nice; its processes at the base nice. supervisord: nice -n ${niceBoth}; its processes inherit it).`,
      `targets for mirrorbox: restarted and ready p50 ≤ ${targets.readyP50Ms} ms and p99 ≤ ${targets.readyP99Ms} ms: ${met ? 'met' : 'NOT met'}.`,
    ],
    rows,
    extra: {
      targets,
      targetsMet: met,
      killsPerRound,
      rounds: roundsPerSupervisor,
      settleMs,
      jitterMsMax,
      nice: niceBoth,
      samples,
    },
  });
  process.stdout.write(`targets (p50 ≤ ${targets.readyP50Ms} ms, p99 ≤ ${targets.readyP99Ms} ms to restarted and ready): ${met ? 'met' : 'NOT met'} (p50 ${readyP50.toFixed(2)} ms, p99 ${readyP99.toFixed(2)} ms)\n`);
}

await main();
