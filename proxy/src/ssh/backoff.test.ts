import { describe, expect, it } from 'vitest';
import { createLoginBackoff } from './backoff';

describe('createLoginBackoff', () => {
  it('lets five failures through, then doubles the wait from 250 ms up to 8 s', () => {
    const b = createLoginBackoff(() => 0);
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      delays.push(b.delayMs('10.0.0.1'));
      b.fail('10.0.0.1');
    }
    expect(delays).toEqual([0, 0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000]);
  });

  it('keeps addresses apart', () => {
    const b = createLoginBackoff(() => 0);
    for (let i = 0; i < 6; i++) b.fail('a');
    expect(b.delayMs('a')).toBe(500);
    expect(b.delayMs('b')).toBe(0);
  });

  it('forgets an address after ten minutes without a failure', () => {
    let now = 0;
    const b = createLoginBackoff(() => now);
    for (let i = 0; i < 7; i++) b.fail('a');
    now = 10 * 60_000;
    expect(b.delayMs('a')).toBe(1000);
    now += 1;
    expect(b.delayMs('a')).toBe(0);
    b.fail('a');
    expect(b.delayMs('a')).toBe(0);
  });

  it('bounds its table, dropping the oldest address first', () => {
    const b = createLoginBackoff(() => 0);
    for (let i = 0; i < 6; i++) b.fail('first');
    for (let i = 0; i < 10_000; i++) b.fail(`scan-${i}`);
    expect(b.delayMs('first')).toBe(0);
    for (let i = 0; i < 5; i++) b.fail('scan-9999');
    expect(b.delayMs('scan-9999')).toBe(500);
  });
});
