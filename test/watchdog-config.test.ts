import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ConfigError, loadConfig, parseConfig } from '../src/watchdog/config.js';
import { timerMsMax } from '../src/watchdog/limits.js';
import { repoRoot } from './helpers/paths.js';
import { run } from './helpers/process.js';
import { cliPath } from './helpers/paths.js';
import { tempDir } from './helpers/tmp.js';

const corpusDir = join(repoRoot, 'test', 'corpus', 'watchdog-config');

function problemsOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'WATCHDOG_CONFIG');
    return err;
  }
  assert.fail('expected the config to be refused');
}

test('the issue example parses, with defaults and paths resolved against the config folder', () => {
  const file = join(corpusDir, 'good-issue-example.yaml');
  const c = loadConfig(file);
  assert.equal(c.journal, join(corpusDir, 'var', 'watchdog.jsonl'));
  assert.equal(c.stateDir, join(corpusDir, 'var'));
  assert.equal(c.logDir, join(corpusDir, 'var', 'logs'));
  assert.deepEqual(c.ladder, ['restart-failed', 'partial-restart', 'full-restart', 'notify']);
  assert.deepEqual(c.budget, { restarts: 5, windowSeconds: 60 });
  assert.deepEqual(c.notify?.email?.to, ['ops@example.com']);
  assert.equal(c.notify?.syslog, true);
  assert.equal(c.processes.length, 2);
  assert.deepEqual(c.processes[0]!.stop, { signal: 'SIGTERM', timeoutMs: 5000 });
  assert.deepEqual(c.processes[0]!.live, { tcp: '127.0.0.1:10809', everyMs: 1000, failures: 3, timeoutMs: 1000 });
  // Defaults for what the second process leaves out.
  assert.deepEqual(c.processes[1]!.stop, { signal: 'SIGTERM', timeoutMs: 5000 });
  assert.equal(c.processes[1]!.ready, undefined);
  assert.equal(c.checkIntervalMs, 500);
  assert.equal(c.onExhausted, 'hold');
});

test('the appliance config (appliance/watchdog.yaml) is valid and runs the NBD server from the repository root', () => {
  const c = loadConfig(join(repoRoot, 'appliance', 'watchdog.yaml'));
  assert.equal(c.cwd, repoRoot);
  assert.equal(c.journal, join(repoRoot, 'var', 'watchdog', 'journal.jsonl'));
  const store = c.processes[0]!;
  assert.equal(store.name, 'store');
  assert.deepEqual(store.command, ['node', 'bin/run.js', 'serve', '--mkdir', '--store', './var/disk0.img', '--size', '1G']);
  assert.deepEqual(store.ready, { nbd: 'nbd://127.0.0.1:10809' });
  assert.equal(store.stop.signal, 'SIGTERM');
});

test('corpus: every file is accepted or refused at the line and field its header names', () => {
  const files = readdirSync(corpusDir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 10);
  for (const f of files) {
    const text = readFileSync(join(corpusDir, f), 'utf8');
    const expect = /^# expect: (.*)$/m.exec(text)?.[1];
    assert.ok(expect, `${f} has no "# expect:" header`);
    if (expect === 'ok') {
      parseConfig(text, f);
      continue;
    }
    const [line, field] = expect.split(' ');
    const err = problemsOf(() => parseConfig(text, f));
    const p = err.problems[0]!;
    assert.equal(p.file, f);
    assert.equal(p.line, Number(line), `${f}: line of ${JSON.stringify(p)}`);
    assert.equal(p.field, field === '(document)' ? '' : field, `${f}: field of ${JSON.stringify(p)}`);
    assert.ok(err.message.startsWith(`${f}:${line}:`), `${f}: message "${err.message}"`);
  }
});

test('several problems are all reported, in file order, each with its own line', () => {
  const text = [
    'journal: j.jsonl', //                         1
    'checkIntervalMs: 1', //                       2  below the minimum
    'ladder: [restart-failed]', //                 3
    'processes:', //                               4
    '  - name: "bad name!"', //                    5
    '    command: [x]', //                         6
    '    live: { http: "ftp://x", everyMs: 0 }', // 7
  ].join('\n');
  const err = problemsOf(() => parseConfig(text, 'multi.yaml'));
  const found = err.problems.map((p) => `${p.line} ${p.field}`);
  assert.deepEqual(found, ['2 checkIntervalMs', '5 processes[0].name', '7 processes[0].live.http', '7 processes[0].live.everyMs']);
  assert.match(err.problems[2]!.message, /expected a http or https URL/);
});

test('an unreadable file is a ConfigError naming the file', () => {
  const err = problemsOf(() => loadConfig('/nonexistent/watchdog.yaml'));
  assert.equal(err.problems[0]!.file, '/nonexistent/watchdog.yaml');
  assert.match(err.message, /no such file/);
});

test('fuzz: any text gives a config or a ConfigError with positions, never another error', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (text) => {
      try {
        parseConfig(text, 'fuzz.yaml');
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        for (const p of err.problems) assert.ok(p.line >= 1 && p.column >= 1, JSON.stringify(p));
      }
    }),
    { numRuns: 500 },
  );
});

test('fuzz: mutated valid configs are accepted or refused at a line that exists', () => {
  const base = {
    journal: 'j.jsonl',
    ladder: ['restart-failed', 'full-restart'],
    processes: [{ name: 'a', command: ['sleep', '1'], ready: { tcp: '127.0.0.1:1' }, stop: { signal: 'SIGTERM', timeoutMs: 10 } }],
  };
  const value = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }));
  fc.assert(
    fc.property(fc.constantFrom('journal', 'ladder', 'processes', 'checkIntervalMs', 'budget', 'notify', 'zzz'), value, fc.nat(3), (key, v, depth) => {
      const doc = structuredClone(base) as Record<string, unknown>;
      if (depth === 0) doc[key] = v;
      else (doc['processes'] as Record<string, unknown>[])[0]![depth === 1 ? 'ready' : depth === 2 ? 'command' : key] = v;
      const text = stringify(doc);
      const lines = text.split('\n').length;
      try {
        parseConfig(text, 'm.yaml');
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        for (const p of err.problems) assert.ok(p.line >= 1 && p.line <= lines, `${JSON.stringify(p)} in\n${text}`);
      }
    }),
    { numRuns: 300 },
  );
});

test('CLI: `watchdog run` on a bad file prints file:line:column: field: message and exits 2', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'journal: j.jsonl\nladder: [restart-failed]\nprocesses:\n  - name: a\n    command: [sleep, "1"]\n    ready: { tcp: "nowhere" }\n');
  const r = await run(process.execPath, [cliPath, 'watchdog', 'run', file]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^mirrorbox: ${file.replace(/[/.]/g, '\\$&')}:6:\\d+: processes\\[0\\]\\.ready\\.tcp: expected "host:port".* \\(WATCHDOG_CONFIG\\)\n$`));
  // Several problems: one line each, every one with the prefix and the code.
  writeFileSync(file, 'journal: j.jsonl\ncheckIntervalMs: 1\nladder: [restart-failed]\nprocesses:\n  - name: a\n    command: [sleep, "1"]\n    ready: { tcp: "nowhere" }\n');
  const several = await run(process.execPath, [cliPath, 'watchdog', 'run', file]);
  assert.equal(several.code, 2, several.stderr);
  const lines = several.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, several.stderr);
  assert.match(lines[0]!, /^mirrorbox: .*bad\.yaml:2:\d+: checkIntervalMs: .* \(WATCHDOG_CONFIG\)$/);
  assert.match(lines[1]!, /^mirrorbox: .*bad\.yaml:7:\d+: processes\[0\]\.ready\.tcp: .* \(WATCHDOG_CONFIG\)$/);
  const ok = await run(process.execPath, [cliPath, 'watchdog', 'run', '--check', join(corpusDir, 'good-issue-example.yaml')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /good \(2 processes: store, mirror; ladder restart-failed → partial-restart → full-restart → notify\)/);
});

test('every millisecond field refuses values past timerMsMax (Node would fire such a timer after 1 ms), naming file, line and field', () => {
  const over = timerMsMax + 1;
  const base = (): Record<string, unknown> => ({
    journal: 'j.jsonl',
    ladder: ['restart-failed'],
    processes: [{ name: 'a', command: ['sleep', '1'], ready: { tcp: '127.0.0.1:1' }, live: { file: 'hb' }, stop: { signal: 'SIGTERM' } }],
    notify: { syslog: true },
    hardwareWatchdog: { device: '/dev/null' },
    backoff: {},
  });
  const fields: [string, (doc: Record<string, unknown>, v: number) => void][] = [
    ['checkIntervalMs', (d, v) => (d['checkIntervalMs'] = v)],
    ['stableMs', (d, v) => (d['stableMs'] = v)],
    ['backoff.initialMs', (d, v) => ((d['backoff'] as Record<string, unknown>)['initialMs'] = v)],
    ['backoff.maxMs', (d, v) => ((d['backoff'] as Record<string, unknown>)['maxMs'] = v)],
    ['notify.timeoutMs', (d, v) => ((d['notify'] as Record<string, unknown>)['timeoutMs'] = v)],
    ['hardwareWatchdog.everyMs', (d, v) => ((d['hardwareWatchdog'] as Record<string, unknown>)['everyMs'] = v)],
    ['processes[0].readyTimeoutMs', (d, v) => (proc(d)['readyTimeoutMs'] = v)],
    ['processes[0].ready.timeoutMs', (d, v) => ((proc(d)['ready'] as Record<string, unknown>)['timeoutMs'] = v)],
    ['processes[0].live.everyMs', (d, v) => ((proc(d)['live'] as Record<string, unknown>)['everyMs'] = v)],
    ['processes[0].live.timeoutMs', (d, v) => ((proc(d)['live'] as Record<string, unknown>)['timeoutMs'] = v)],
    ['processes[0].live.maxAgeMs', (d, v) => ((proc(d)['live'] as Record<string, unknown>)['maxAgeMs'] = v)],
    ['processes[0].stop.timeoutMs', (d, v) => ((proc(d)['stop'] as Record<string, unknown>)['timeoutMs'] = v)],
  ];
  for (const [field, set] of fields) {
    const atMax = base();
    set(atMax, timerMsMax);
    if (field === 'backoff.initialMs') (atMax['backoff'] as Record<string, unknown>)['maxMs'] = timerMsMax;
    parseConfig(stringify(atMax), 'max.yaml'); // the largest value a timer can wait is fine
    const doc = base();
    set(doc, over);
    const text = stringify(doc);
    const line = text.split('\n').findIndex((l) => l.includes(String(over))) + 1;
    const err = problemsOf(() => parseConfig(text, 'over.yaml'));
    const p = err.problems.find((q) => q.field === field);
    assert.ok(p, `${field}: problems ${JSON.stringify(err.problems)}`);
    assert.equal(p.line, line, field);
    assert.match(err.message, new RegExp(`^over\\.yaml:${line}:\\d+: ${field.replace(/[.[\]]/g, '\\$&')}: at most ${timerMsMax} ms`, 'm'));
  }
});

test('CLI: --timeout-ms past timerMsMax is refused (stop and restart)', async (t) => {
  const dir = tempDir(t);
  for (const command of ['stop', 'restart']) {
    const r = await run(process.execPath, [cliPath, 'watchdog', command, '--state-dir', dir, '--timeout-ms', String(timerMsMax + 1)]);
    assert.equal(r.code, 2, `${command}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`--timeout-ms.*${timerMsMax}`), command);
  }
});

function proc(doc: Record<string, unknown>): Record<string, unknown> {
  return (doc['processes'] as Record<string, unknown>[])[0]!;
}

test('live.maxAgeMs is refused with a tcp, http or nbd probe (it would be ignored), accepted with file', () => {
  for (const probe of ['tcp: "127.0.0.1:1"', 'http: "http://127.0.0.1:1/"', 'nbd: "nbd://127.0.0.1:1"']) {
    const text = `journal: j.jsonl\nladder: [restart-failed]\nprocesses:\n  - name: a\n    command: [x]\n    live:\n      ${probe}\n      maxAgeMs: 5000\n`;
    const err = problemsOf(() => parseConfig(text, 'age.yaml'));
    assert.deepEqual(err.problems.map((p) => `${p.line} ${p.field}`), ['8 processes[0].live.maxAgeMs'], probe);
    assert.match(err.message, /only for a file probe/);
  }
  const ok = parseConfig('journal: j.jsonl\nladder: [restart-failed]\nprocesses:\n  - { name: a, command: [x], live: { file: hb, maxAgeMs: 5000 } }\n', 'age.yaml');
  assert.equal(ok.processes[0]!.live!.maxAgeMs, 5000);
});
