/**
 * The watchdog's configuration: a YAML file (parsed by `yaml`, with node positions kept) checked
 * by a zod schema. Every problem is reported as file:line:column plus the field's path, found
 * by mapping the zod issue path back to the YAML node it came from.
 *
 * Relative paths (journal, stateDir, logDir, a process's cwd) are resolved against `cwd`, which
 * itself defaults to the folder holding the config file (as docker-compose does). A `file`
 * probe's relative path is resolved against its process's own cwd (the process's `cwd:`, else
 * `cwd`), where the process itself would write it (supervisor.ts, Member).
 */
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, resolve } from 'node:path';
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { MirrorboxError, hasCode, messageOf } from '../util/errors.js';
import * as limits from './limits.js';

export const rungNames = ['restart-failed', 'partial-restart', 'full-restart', 'notify'] as const;
export type Rung = (typeof rungNames)[number];

/** One problem found in a config file. */
export interface ConfigProblem {
  file: string;
  /** 1-based; 0 when the problem has no position (an unreadable file). */
  line: number;
  column: number;
  /** Path of the field, e.g. "processes[1].ready.tcp"; "" for the whole document. */
  field: string;
  message: string;
}

/** A config file that cannot be used. `problems` lists every finding, in file order. */
export class ConfigError extends MirrorboxError {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    const lines = problems.map(formatProblem);
    super('WATCHDOG_CONFIG', lines.length === 1 ? lines[0]! : `${lines.length} problems:\n${lines.join('\n')}`, { reasons: lines });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  return p.field === '' ? `${where}: ${p.message}` : `${where}: ${p.field}: ${p.message}`;
}

// ---------------------------------------------------------------------------------------------
// Schema

const hostPortPattern = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const hostPort = z.string().refine((s) => {
  const m = hostPortPattern.exec(s);
  return m !== null && Number(m[1]) > 0 && Number(m[1]) < 65536;
}, 'expected "host:port", e.g. "127.0.0.1:10809"');

function urlWith(protocols: readonly string[], example: string): z.ZodType<string> {
  return z.string().refine((s) => {
    try {
      return protocols.includes(new URL(s).protocol);
    } catch {
      return false;
    }
  }, `expected a ${protocols.map((p) => p.replace(':', '')).join(' or ')} URL, e.g. "${example}"`);
}

const regexSource = z.string().min(1).refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, 'not a valid regular expression');

const signalName = z.string().refine((s) => s in osConstants.signals, 'not a signal name (e.g. SIGTERM, SIGINT, SIGQUIT)');

/** Every millisecond field: a timer waits at most timerMsMax (Node fires a longer one after 1 ms). */
const timerMsWords = `at most ${limits.timerMsMax} ms (about 24.8 days, the longest a timer can wait)`;
const msAtLeast = (min: number) => z.number().int().min(min).max(limits.timerMsMax, timerMsWords);
const positiveMs = msAtLeast(1);
const probeKinds = ['tcp', 'nbd', 'http', 'file'] as const;

const readySchema = z
  .strictObject({
    tcp: hostPort.optional(),
    nbd: urlWith(['nbd:'], 'nbd://127.0.0.1:10809').optional(),
    http: urlWith(['http:', 'https:'], 'http://127.0.0.1:8080/health').optional(),
    file: z.string().min(1).optional(),
    stdout: regexSource.optional(),
    timeoutMs: positiveMs.optional(),
  })
  .superRefine((v, ctx) => {
    const kinds = [...probeKinds, 'stdout'].filter((k) => v[k as keyof typeof v] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `needs exactly one of tcp, nbd, http, file, stdout (found ${kinds.length === 0 ? 'none' : kinds.join(', ')})` });
    }
  });

const liveSchema = z
  .strictObject({
    tcp: hostPort.optional(),
    nbd: urlWith(['nbd:'], 'nbd://127.0.0.1:10809').optional(),
    http: urlWith(['http:', 'https:'], 'http://127.0.0.1:8080/health').optional(),
    file: z.string().min(1).optional(),
    /** For `file`: the file's modification time must be newer than this (a heartbeat file). */
    maxAgeMs: positiveMs.optional(),
    everyMs: positiveMs.default(limits.liveEveryMsDefault),
    failures: z.number().int().min(1).default(limits.liveFailuresDefault),
    timeoutMs: positiveMs.default(limits.probeTimeoutMsDefault),
  })
  .superRefine((v, ctx) => {
    const kinds = probeKinds.filter((k) => v[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `needs exactly one of tcp, nbd, http, file (found ${kinds.length === 0 ? 'none' : kinds.join(', ')})` });
    }
    if (v.maxAgeMs !== undefined && v.file === undefined) {
      ctx.addIssue({ code: 'custom', path: ['maxAgeMs'], message: 'only for a file probe (the heartbeat file\'s age); a tcp, nbd or http probe has no age' });
    }
  });

const budgetSchema = z.strictObject({
  restarts: z.number().int().min(0),
  windowSeconds: z.number().positive(),
});

const processSchema = z.strictObject({
  name: z
    .string()
    .max(limits.processNameCharsMax)
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, `letters, digits, "_", "." and "-" (up to ${limits.processNameCharsMax}), starting with a letter or digit`),
  command: z.array(z.string().min(1)).min(1, 'needs at least the program to run'),
  cwd: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
  ready: readySchema.optional(),
  readyTimeoutMs: positiveMs.default(limits.readyTimeoutMsDefault),
  live: liveSchema.optional(),
  stop: z
    .strictObject({
      signal: signalName.default('SIGTERM'),
      timeoutMs: positiveMs.default(limits.stopTimeoutMsDefault),
    })
    .default({ signal: 'SIGTERM', timeoutMs: limits.stopTimeoutMsDefault }),
  budget: budgetSchema.optional(),
  /** Keep a forked shell waiting to exec this command, so a restart needs no fork (default true). */
  spare: z.boolean().default(true),
});

const notifySchema = z.strictObject({
  email: z
    .strictObject({
      url: urlWith(['smtp:', 'smtps:'], 'smtp://127.0.0.1:25'),
      from: z.string().min(3),
      to: z.union([z.string().min(3), z.array(z.string().min(3)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v])),
    })
    .optional(),
  webhook: z
    .strictObject({
      url: urlWith(['http:', 'https:'], 'http://127.0.0.1:8080/alert'),
      headers: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
  syslog: z
    .union([
      z.boolean(),
      z.strictObject({
        socket: z.string().min(1).optional(),
        udp: hostPort.optional(),
        facility: z.enum(['daemon', 'user', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7']).optional(),
      }),
    ])
    .optional(),
  buzzer: z
    .strictObject({
      device: z.string().min(1),
      beeps: z.number().int().min(1).max(limits.buzzerBeepsMax).default(limits.buzzerBeepsDefault),
    })
    .optional(),
  rateLimit: z
    .strictObject({
      alerts: z.number().int().min(1),
      perSeconds: z.number().positive(),
    })
    .optional(),
  timeoutMs: positiveMs.optional(),
});

function rotateSchema(bytesMin: number, keptMax: number) {
  return z.strictObject({ maxBytes: z.number().int().min(bytesMin), keep: z.number().int().min(1).max(keptMax) });
}

const configObject = z.strictObject({
    name: z.string().min(1).max(64).optional(),
    cwd: z.string().min(1).optional(),
    journal: z.string().min(1),
    journalRotate: rotateSchema(limits.journalRotateBytesMin, limits.journalFilesKeptMax).optional(),
    stateDir: z.string().min(1).optional(),
    logDir: z.string().min(1).optional(),
    /** Each process's output log: rotated before it would pass maxBytes, `keep` old files. */
    outputRotate: rotateSchema(limits.outputRotateBytesMin, limits.outputLogFilesKeptMax).optional(),
    checkIntervalMs: msAtLeast(limits.checkIntervalMsMin).default(limits.checkIntervalMsDefault),
    ladder: z
      .array(z.enum(rungNames, { message: `expected one of ${rungNames.join(', ')}` }))
      .min(1, 'needs at least one rung')
      .refine((l) => new Set(l).size === l.length, 'a rung is listed twice')
      .refine((l) => !l.includes('notify') || l.indexOf('notify') === l.length - 1, 'notify must be the last rung'),
    attemptsPerRung: z.number().int().min(1).default(limits.attemptsPerRungDefault),
    stableMs: msAtLeast(0).default(limits.stableMsDefault),
    backoff: z
      .strictObject({
        initialMs: msAtLeast(0).default(limits.backoffInitialMsDefault),
        maxMs: msAtLeast(0).default(limits.backoffMaxMsDefault),
        factor: z.number().min(1).default(limits.backoffFactorDefault),
      })
      .default({ initialMs: limits.backoffInitialMsDefault, maxMs: limits.backoffMaxMsDefault, factor: limits.backoffFactorDefault }),
    budget: budgetSchema.optional(),
    onExhausted: z.enum(['hold', 'retry']).default('hold'),
    notify: notifySchema.optional(),
    /** The watchdog's own nice value (−20…19); the processes it starts keep the one it started with. */
    nice: z.number().int().min(-20).max(19).optional(),
    hardwareWatchdog: z.strictObject({ device: z.string().min(1), everyMs: positiveMs.default(limits.hardwareFeedMsDefault) }).optional(),
    processes: z.array(processSchema).min(1, 'needs at least one process').max(limits.processesMax),
  });

const configSchema = configObject.superRefine((c, ctx) => {
    const seen = new Map<string, number>();
    c.processes.forEach((p, i) => {
      if (seen.has(p.name)) {
        ctx.addIssue({ code: 'custom', path: ['processes', i, 'name'], message: `"${p.name}" is already the name of processes[${seen.get(p.name)}]` });
      }
      seen.set(p.name, i);
    });
    if (c.ladder.includes('notify')) {
      const n = c.notify;
      if (!n || (!n.email && !n.webhook && !n.syslog && !n.buzzer)) {
        ctx.addIssue({ code: 'custom', path: ['ladder'], message: 'the ladder ends in notify but notify: names no channel (email, webhook, syslog, buzzer)' });
      }
    }
    if (c.backoff.maxMs < c.backoff.initialMs) {
      ctx.addIssue({ code: 'custom', path: ['backoff', 'maxMs'], message: 'must be at least initialMs' });
    }
  });

export type RawConfig = z.output<typeof configSchema>;
export type ProcessConfig = RawConfig['processes'][number];
export type ReadyConfig = NonNullable<ProcessConfig['ready']>;
export type LiveConfig = NonNullable<ProcessConfig['live']>;
export type NotifyConfig = NonNullable<RawConfig['notify']>;

/** A checked config with every path made absolute. */
export interface WatchdogConfig extends RawConfig {
  /** Absolute path of the file this came from. */
  file: string;
  /** Absolute folder every relative path was resolved against. */
  cwd: string;
  journal: string;
  stateDir: string;
  logDir: string;
  name: string;
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Reads and checks a config file; throws ConfigError (code WATCHDOG_CONFIG) on any problem. */
export function loadConfig(file: string): WatchdogConfig {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const why = hasCode(err, 'ENOENT') ? 'no such file' : messageOf(err);
    throw new ConfigError([{ file, line: 0, column: 0, field: '', message: `cannot read the config file: ${why}` }]);
  }
  return parseConfig(text, file, path);
}

/**
 * Checks config text. `displayName` is what problems call the file; `absolutePath` anchors
 * relative paths (default: `displayName` resolved against the current folder).
 */
export function parseConfig(text: string, displayName: string, absolutePath = resolve(displayName)): WatchdogConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const at = (offset: number): { line: number; column: number } => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ file: displayName, ...at(e.pos[0]), field: '', message: `YAML: ${firstLine(e.message)}` })),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError([{ file: displayName, line: 1, column: 1, field: '', message: `YAML: ${messageOf(err)}` }]);
  }
  if (data === null || data === undefined) {
    throw new ConfigError([{ file: displayName, line: 1, column: 1, field: '', message: 'the file is empty (expected a mapping with journal, ladder, processes...)' }]);
  }
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((issue) => problemsOf(issue, doc, displayName, at));
    problems.sort((a, b) => a.line - b.line || a.column - b.column);
    throw new ConfigError(problems);
  }
  const raw = parsed.data;
  const cwd = resolve(dirname(absolutePath), raw.cwd ?? '.');
  const journal = resolve(cwd, raw.journal);
  const stateDir = resolve(cwd, raw.stateDir ?? dirname(raw.journal));
  return {
    ...raw,
    file: absolutePath,
    cwd,
    journal,
    stateDir,
    logDir: resolve(cwd, raw.logDir ?? resolve(stateDir, 'logs')),
    name: raw.name ?? 'application',
  };
}

type Issue = z.core.$ZodIssue;

function problemsOf(
  issue: Issue,
  doc: Document,
  file: string,
  at: (offset: number) => { line: number; column: number },
): ConfigProblem[] {
  const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const keyNode = mapKeyNode(doc, path, key);
      const pos = keyNode?.range ? at(keyNode.range[0]) : positionOf(doc, path, at);
      return { file, ...pos, field: fieldName([...path, key]), message: `unknown field "${key}"${suggestion(path)}` };
    });
  }
  return [{ file, ...positionOf(doc, path, at), field: fieldName(path), message: messageFor(issue, doc, path) }];
}

function messageFor(issue: Issue, doc: Document, path: (string | number)[]): string {
  if (issue.code === 'invalid_type' && !doc.hasIn(path)) return `missing (required ${issue.expected})`;
  if (issue.code === 'invalid_value' && 'values' in issue) return `expected one of ${issue.values.map((v) => String(v)).join(', ')}`;
  return issue.message.replace(/^Invalid input: /, '');
}

/** Where a path's node starts; for a missing node, where its nearest existing parent starts. */
function positionOf(doc: Document, path: (string | number)[], at: (offset: number) => { line: number; column: number }): { line: number; column: number } {
  for (let n = path.length; n >= 0; n -= 1) {
    const node = (n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)) as YamlNode | null | undefined;
    if (node && typeof node === 'object' && 'range' in node && node.range) {
      if (n < path.length || n === 0) {
        // Missing child: point at the parent's key when we can (clearer than the value's start).
        const keyNode = n > 0 ? mapKeyNode(doc, path.slice(0, n - 1), path[n - 1]!) : undefined;
        if (keyNode?.range) return at(keyNode.range[0]);
      }
      return at(node.range[0]);
    }
  }
  return { line: 1, column: 1 };
}

/** The key node of `key` inside the mapping at `path`, if there is one. */
function mapKeyNode(doc: Document, path: (string | number)[], key: string | number): YamlNode | undefined {
  const parent = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (isMap(parent)) {
    for (const pair of parent.items) {
      if (isPair(pair) && isScalar(pair.key) && pair.key.value === key) return pair.key;
    }
  }
  if (isSeq(parent) && typeof key === 'number') {
    const item = parent.items[key];
    if (item && typeof item === 'object' && 'range' in item) return item as YamlNode;
  }
  return undefined;
}

/** Field names allowed in each mapping, by path with list indexes written "[]". */
const knownKeysByPath: Record<string, readonly string[]> = {
  '': Object.keys(configObject.shape),
  'processes[]': Object.keys(processSchema.shape),
  'processes[].ready': [...probeKinds, 'stdout', 'timeoutMs'],
  'processes[].live': [...probeKinds, 'maxAgeMs', 'everyMs', 'failures', 'timeoutMs'],
  'processes[].stop': ['signal', 'timeoutMs'],
  notify: Object.keys(notifySchema.shape),
  budget: ['restarts', 'windowSeconds'],
  'processes[].budget': ['restarts', 'windowSeconds'],
  backoff: ['initialMs', 'maxMs', 'factor'],
  journalRotate: ['maxBytes', 'keep'],
  outputRotate: ['maxBytes', 'keep'],
};

function suggestion(path: (string | number)[]): string {
  const key = fieldName(path.map((p) => (typeof p === 'number' ? -1 : p))).replace(/\[-1\]/g, '[]');
  const known = knownKeysByPath[key];
  return known ? ` (known fields: ${known.join(', ')})` : '';
}

export function fieldName(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}
