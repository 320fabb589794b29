import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BusyPoll } from '../src/nbd/busy-poll.js';

test('busy poll: spins for the window after activity, then stops and costs nothing while idle', async () => {
  const poll = new BusyPoll(20_000); // 20 ms
  poll.activity();
  assert.equal(poll.active, true);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(poll.active, false, 'the spin ended after its window');
  const turns = poll.turns;
  assert.ok(turns > 1, `it polled (${turns} loop turns)`);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(poll.turns, turns, 'no turns while idle');
});

test('busy poll: each activity extends the window; stop() ends it at once; 0 never spins', async () => {
  let nowMs = 0;
  const poll = new BusyPoll(100, () => nowMs);
  poll.activity();
  await new Promise((r) => setImmediate(r));
  assert.equal(poll.active, true, 'inside the window');
  nowMs = 0.09;
  poll.activity();
  nowMs = 0.15;
  await new Promise((r) => setImmediate(r));
  assert.equal(poll.active, true, 'extended to 0.19 ms by the second activity');
  poll.stop();
  assert.equal(poll.active, false);
  const off = new BusyPoll(0);
  off.activity();
  assert.equal(off.active, false);
  assert.throws(() => new BusyPoll(-1), RangeError);
});
