import { describe, expect, it } from 'vitest';
import { SessionExecuteRequest, SessionId, wantsMarkedOutput } from './sessions';

describe('wantsMarkedOutput', () => {
  it('is true for SDKs before 0.167.0 and false from it on', () => {
    for (const v of ['0.143.0', '0.166.9', 'v0.166.0', '0.1.0', '0.166.99-beta', ' 0.150.2 ']) expect(wantsMarkedOutput(v), v).toBe(true);
    for (const v of ['0.167.0', '0.167.1', '0.218.0', '1.0.0', 'v1.2.3', '0.167.0-rc.1']) expect(wantsMarkedOutput(v), v).toBe(false);
  });

  it('gives clients that send no version, or one it cannot read, the current shape', () => {
    for (const v of [undefined, '', 'latest', '0.166', 'x0.100.0', '0.-1.0']) expect(wantsMarkedOutput(v), String(v)).toBe(false);
  });
});

describe('session wire shapes', () => {
  it('takes session ids that are safe to name, and refuses the rest', () => {
    expect(SessionId.safeParse('build-1').success).toBe(true);
    expect(SessionId.safeParse('').success).toBe(false);
    expect(SessionId.safeParse('a/b').success).toBe(false);
    expect(SessionId.safeParse('a\nb').success).toBe(false);
    expect(SessionId.safeParse('x'.repeat(257)).success).toBe(false);
  });

  it('needs a command to execute', () => {
    expect(SessionExecuteRequest.safeParse({}).success).toBe(false);
    expect(SessionExecuteRequest.safeParse({ command: '' }).success).toBe(false);
    expect(SessionExecuteRequest.safeParse({ command: 'a\u0000b' }).success).toBe(false);
    expect(SessionExecuteRequest.safeParse({ command: 'ls' }).success).toBe(true);
  });
});
