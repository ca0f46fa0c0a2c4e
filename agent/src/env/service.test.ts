import { describe, expect, it } from 'vitest';
import type { SandboxContext } from '../system/context';
import { createEnvService, MAX_ENV_ENTRY, protectedReason } from './service';

const context = (env: Record<string, string>): SandboxContext => ({ workdir: '/w', identity: {} as SandboxContext['identity'], env, spawnAs: {} });

describe('protectedReason', () => {
  it("refuses Cove's own, identity and loader variables, and allows the rest", () => {
    for (const name of ['COVE_X', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'NODE_OPTIONS']) expect(protectedReason(name), name).toBeDefined();
    for (const name of ['PATH', 'LANG', 'cove_x', 'HOMEBREW', 'NODE_ENV', 'XLD_X']) expect(protectedReason(name), name).toBeUndefined();
  });
});

describe('createEnvService', () => {
  it('unsets, then removes by value prefix, then sets, in place', () => {
    const ctx = context({ PATH: '/bin', A: 'tmp-1', B: 'tmp-2', C: 'keep', HOME: 'tmp-home', D: 'x' });
    const env = ctx.env;
    createEnvService(ctx).update({ unset: ['D'], unsetValuePrefix: 'tmp-', set: { B: 'tmp-new', E: 'e' } });
    expect(ctx.env).toBe(env);
    // Protected names and names being set survive the prefix.
    expect(env).toEqual({ PATH: '/bin', B: 'tmp-new', C: 'keep', HOME: 'tmp-home', E: 'e' });
  });

  it('keeps PATH: it may change, not go or be emptied', () => {
    const ctx = context({ PATH: '/bin' });
    const env = createEnvService(ctx);
    env.update({ set: { PATH: '/usr/bin:/bin' } });
    expect(ctx.env.PATH).toBe('/usr/bin:/bin');
    expect(() => env.update({ unset: ['PATH'] })).toThrow(/body\.unset\.0: PATH cannot be removed/);
    expect(() => env.update({ set: { PATH: '' } })).toThrow(/body\.set\.PATH: PATH cannot be empty/);
    env.update({ unsetValuePrefix: '/usr' });
    expect(ctx.env.PATH).toBe('/usr/bin:/bin');
  });

  it('changes nothing when any part is refused', () => {
    const ctx = context({ A: '1' });
    const env = createEnvService(ctx);
    expect(() => env.update({ unset: ['A'], set: { B: '2', COVE_TOKEN: 'x' } })).toThrow(/body\.set\.COVE_TOKEN/);
    expect(() => env.update({ set: { BIG: 'x'.repeat(MAX_ENV_ENTRY) } })).toThrow(/body\.set\.BIG: NAME=value is limited/);
    expect(() => env.update({ set: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`V${i}`, 'x'.repeat(120_000)])) })).toThrow(/body\.set: the environment would take/);
    expect(ctx.env).toEqual({ A: '1' });
  });

  it('takes an entry of exactly the limit', () => {
    const ctx = context({});
    createEnvService(ctx).update({ set: { N: 'x'.repeat(MAX_ENV_ENTRY - 3) } });
    expect(ctx.env.N).toHaveLength(MAX_ENV_ENTRY - 3);
  });
});
