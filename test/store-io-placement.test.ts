import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoPlacement } from '../src/store/io-placement.js';

test('io placement: synchronous until a call stalls, then the threadpool for holdMs, then synchronous again', () => {
  let nowMs = 1000;
  const placement = new IoPlacement('auto', { stallMs: 2, holdMs: 1000, syncBytesMax: 4096, now: () => nowMs });
  assert.equal(placement.runsSync(4096), true);
  assert.equal(placement.runsSync(4097), false, 'above syncBytesMax: threadpool');
  let started = placement.started();
  nowMs += 1.5;
  placement.finished(started);
  assert.equal(placement.runsSync(512), true, 'a fast call keeps I/O on the event loop');
  started = placement.started();
  nowMs += 5;
  placement.finished(started);
  assert.equal(placement.stalls, 1);
  assert.equal(placement.runsSync(512), false, 'after a stall: threadpool');
  nowMs += 999;
  assert.equal(placement.runsSync(512), false);
  nowMs += 2;
  assert.equal(placement.runsSync(512), true, 'after holdMs: event loop again');
});

test('io placement: forced modes ignore size and stalls', () => {
  const sync = new IoPlacement('sync', { syncBytesMax: 1 });
  const async = new IoPlacement('async');
  assert.equal(sync.runsSync(1 << 30), true);
  assert.equal(async.runsSync(1), false);
});
