import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs, decide, SlidingWindow, type IncidentPosition, type LadderPolicy } from '../src/watchdog/ladder.js';

const full: LadderPolicy = {
  ladder: ['restart-failed', 'partial-restart', 'full-restart', 'notify'],
  attemptsPerRung: 1,
  onExhausted: 'hold',
  backoff: { initialMs: 100, maxMs: 1000, factor: 2 },
};
const at = (p: Partial<IncidentPosition>): IncidentPosition => ({ attempts: 0, rungIndex: 0, attemptsAtRung: 0, repeat: true, retrying: false, budgetExceeded: null, ...p });

test('the README table: each row of the ladder decision', () => {
  // first failure: the first rung, at once
  assert.deepEqual(decide(full, at({})), { kind: 'remedy', rung: 'restart-failed', rungIndex: 0, escalated: false, delayMs: 0 });
  // failed again after one attempt at rung 0: escalate to rung 1, after the first backoff
  assert.deepEqual(decide(full, at({ attempts: 1, rungIndex: 0, attemptsAtRung: 1 })), { kind: 'remedy', rung: 'partial-restart', rungIndex: 1, escalated: true, delayMs: 100 });
  assert.deepEqual(decide(full, at({ attempts: 2, rungIndex: 1, attemptsAtRung: 1 })), { kind: 'remedy', rung: 'full-restart', rungIndex: 2, escalated: true, delayMs: 200 });
  // past the last remedy: notify and hold
  const end = decide(full, at({ attempts: 3, rungIndex: 2, attemptsAtRung: 1 }));
  assert.equal(end.kind, 'exhausted');
  assert.ok(end.kind === 'exhausted' && end.notify && end.then === 'hold' && end.retryRung === null);
  // budget exceeded before the ladder ends: notify at once
  const budget = decide(full, at({ attempts: 1, rungIndex: 0, attemptsAtRung: 1, budgetExceeded: 'application: 5 restarts in 60 s' }));
  assert.ok(budget.kind === 'exhausted' && budget.notify && /restart budget exceeded \(application: 5 restarts in 60 s\)/.test(budget.reason));
});

test('a process failing for the first time in an incident gets the same rung, not the next', () => {
  assert.deepEqual(decide(full, at({ attempts: 1, rungIndex: 0, attemptsAtRung: 1, repeat: false })), { kind: 'remedy', rung: 'restart-failed', rungIndex: 0, escalated: false, delayMs: 100 });
  assert.deepEqual(decide(full, at({ attempts: 2, rungIndex: 1, attemptsAtRung: 1, repeat: false })), { kind: 'remedy', rung: 'partial-restart', rungIndex: 1, escalated: false, delayMs: 200 });
});

test('attemptsPerRung repeats a rung before escalating', () => {
  const p = { ...full, attemptsPerRung: 2 };
  assert.equal((decide(p, at({ attempts: 1, rungIndex: 0, attemptsAtRung: 1 })) as { rung: string }).rung, 'restart-failed');
  assert.equal((decide(p, at({ attempts: 2, rungIndex: 0, attemptsAtRung: 2 })) as { rung: string }).rung, 'partial-restart');
});

test('a ladder may start at any rung; without notify there is no alert; retry keeps the last remedy', () => {
  const p: LadderPolicy = { ...full, ladder: ['full-restart'], onExhausted: 'retry' };
  assert.equal((decide(p, at({})) as { rung: string }).rung, 'full-restart');
  const end = decide(p, at({ attempts: 1, rungIndex: 0, attemptsAtRung: 1 }));
  assert.ok(end.kind === 'exhausted' && !end.notify && end.then === 'retry' && end.retryRung === 'full-restart');
  const again = decide(p, at({ attempts: 6, rungIndex: 0, attemptsAtRung: 6, retrying: true }));
  assert.ok(again.kind === 'exhausted' && !again.notify && again.retryRung === 'full-restart');
  assert.equal(again.delayMs, 1000, 'backoff capped at maxMs');
  const onlyNotify = decide({ ...full, ladder: ['notify'] }, at({}));
  assert.ok(onlyNotify.kind === 'exhausted' && onlyNotify.notify && onlyNotify.then === 'hold');
});

test('backoff: none for the first attempt, then initial × factor^(n-1), capped', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => backoffMs(full, n)), [0, 100, 200, 400, 800, 1000]);
});

test('sliding window counts only events inside the window', () => {
  const w = new SlidingWindow(1000);
  w.record(0);
  w.record(500);
  w.record(999);
  assert.equal(w.count(999), 3);
  assert.equal(w.count(1000), 2);
  assert.equal(w.count(1999), 0);
});
