/**
 * The escalation ladder as pure decisions (no processes, no clocks): given where an incident
 * stands, what the watchdog does next. The supervisor carries the decisions out; the table in
 * README.md is this function written out.
 */
import assert from 'node:assert/strict';
import type { Rung } from './config.js';

export interface LadderPolicy {
  ladder: readonly Rung[];
  attemptsPerRung: number;
  onExhausted: 'hold' | 'retry';
  backoff: { initialMs: number; maxMs: number; factor: number };
}

export interface IncidentPosition {
  /** Remedy attempts made in this incident so far. */
  attempts: number;
  /** Index into the ladder of the last attempt (meaningless when attempts is 0). */
  rungIndex: number;
  /** Attempts made at that rung in this incident. */
  attemptsAtRung: number;
  /**
   * True when a process that is down now was (re)started by an earlier attempt of this
   * incident: the remedy did not hold, so the incident climbs. A process failing for the first
   * time in the incident gets the current rung again instead.
   */
  repeat: boolean;
  /** True once the incident ran out of ladder or budget and chose to retry. */
  retrying: boolean;
  /** A budget the next attempt would exceed, e.g. "application: 5 restarts in 60 s", or null. */
  budgetExceeded: string | null;
}

export type Decision =
  | { kind: 'remedy'; rung: Exclude<Rung, 'notify'>; rungIndex: number; escalated: boolean; delayMs: number }
  | { kind: 'exhausted'; reason: string; notify: boolean; then: 'hold' | 'retry'; retryRung: Exclude<Rung, 'notify'> | null; retryRungIndex: number; delayMs: number };

/** Delay before attempt number `attempt` (0-based) of an incident: none for the first. */
export function backoffMs(policy: LadderPolicy, attempt: number): number {
  if (attempt <= 0) return 0;
  const ms = policy.backoff.initialMs * policy.backoff.factor ** (attempt - 1);
  return Math.min(policy.backoff.maxMs, Math.round(ms));
}

export function decide(policy: LadderPolicy, at: IncidentPosition): Decision {
  assert.ok(policy.ladder.length > 0, 'empty ladder');
  assert.ok(at.attempts >= 0 && at.attemptsAtRung >= 0, 'negative attempt count');
  const delayMs = backoffMs(policy, at.attempts);
  const lastRemedyIndex = findLastRemedy(policy.ladder);
  const retryRung = lastRemedyIndex >= 0 ? (policy.ladder[lastRemedyIndex] as Exclude<Rung, 'notify'>) : null;

  if (at.retrying) {
    // Past the end already: keep repeating the last remedy rung, with growing backoff.
    return exhausted('still failing after the ladder was exhausted', false);
  }
  const climb = at.repeat && at.attemptsAtRung >= policy.attemptsPerRung;
  const index = at.attempts === 0 ? 0 : climb ? at.rungIndex + 1 : at.rungIndex;
  if (index >= policy.ladder.length || policy.ladder[index] === 'notify') {
    return exhausted(at.attempts === 0 ? 'the ladder starts at notify' : `every rung was tried (${at.attempts} attempts)`, true);
  }
  if (at.budgetExceeded !== null) return exhausted(`restart budget exceeded (${at.budgetExceeded})`, true);
  const rung = policy.ladder[index] as Exclude<Rung, 'notify'>;
  return { kind: 'remedy', rung, rungIndex: index, escalated: at.attempts > 0 && index !== at.rungIndex, delayMs };

  function exhausted(reason: string, notifyNow: boolean): Decision {
    const then = retryRung === null ? 'hold' : policy.onExhausted;
    return {
      kind: 'exhausted',
      reason,
      notify: notifyNow && policy.ladder.includes('notify'),
      then,
      retryRung: then === 'retry' ? retryRung : null,
      retryRungIndex: lastRemedyIndex,
      delayMs,
    };
  }
}

function findLastRemedy(ladder: readonly Rung[]): number {
  for (let i = ladder.length - 1; i >= 0; i -= 1) if (ladder[i] !== 'notify') return i;
  return -1;
}

/** Event times in a sliding window, for restart budgets. */
export class SlidingWindow {
  private times: number[] = [];
  constructor(private readonly windowMs: number) {
    assert.ok(windowMs > 0, 'window must be positive');
  }
  record(nowMs: number): void {
    this.times.push(nowMs);
    this.trim(nowMs);
  }
  count(nowMs: number): number {
    this.trim(nowMs);
    return this.times.length;
  }
  /** Forgets every attempt (an operator took over: the budget starts afresh). */
  clear(): void {
    this.times = [];
  }
  private trim(nowMs: number): void {
    let drop = 0;
    while (drop < this.times.length && this.times[drop]! <= nowMs - this.windowMs) drop += 1;
    if (drop > 0) this.times.splice(0, drop);
  }
}
