import { describe, expect, it } from 'vitest';
import type { SandboxDto } from '../../../wire/sandbox';
import { createTombstones } from './tombstones';

const dto = (id: string): SandboxDto => ({ id, state: 'started', updatedAt: '2026-01-01T00:00:00.000Z' }) as SandboxDto;
const owner = { keyId: 'k1', admin: false };

describe('tombstones', () => {
  it('answer a deleted sandbox as destroyed to its owner and admin keys, for five minutes', () => {
    let t = 1_000_000;
    const stones = createTombstones(() => t);
    stones.bury(dto('a'), 'k1');
    expect(stones.find(owner, 'a')).toMatchObject({ id: 'a', state: 'destroyed' });
    expect(stones.find({ keyId: 'root', admin: true }, 'a')?.state).toBe('destroyed');
    expect(stones.find({ keyId: 'k2', admin: false }, 'a')).toBeUndefined();
    expect(stones.find(owner, 'b')).toBeUndefined();
    t += 5 * 60_000 - 1;
    expect(stones.find(owner, 'a')).toBeDefined();
    t += 1;
    expect(stones.find(owner, 'a')).toBeUndefined();
  });

  it('keep at most 10,000, the oldest going first', () => {
    const stones = createTombstones(() => 0);
    for (let i = 0; i <= 10_000; i++) stones.bury(dto(`s${i}`), 'k1');
    expect(stones.find(owner, 's0')).toBeUndefined();
    expect(stones.find(owner, 's1')).toBeDefined();
    expect(stones.find(owner, 's10000')).toBeDefined();
  });
});
