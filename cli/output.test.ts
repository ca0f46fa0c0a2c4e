import { describe, expect, it } from 'vitest';
import { age, formatBytes, table } from './output';

describe('table', () => {
  it('pads every column but the last to its widest cell', () => {
    expect(table(['ID', 'NAME', 'STATE'], [['a1', 'web', 'started'], ['b22222', '-', 'stopped']])).toBe(
      ['ID      NAME  STATE', 'a1      web   started', 'b22222  -     stopped'].join('\n'),
    );
  });

  it('prints a header alone when there are no rows', () => {
    expect(table(['ID', 'NAME'], [])).toBe('ID  NAME');
  });
});

describe('age', () => {
  const now = Date.parse('2026-01-10T12:00:00Z');
  it('says the largest whole unit', () => {
    expect(age('2026-01-10T11:59:30Z', now)).toBe('30s');
    expect(age('2026-01-10T11:55:00Z', now)).toBe('5m');
    expect(age('2026-01-10T09:00:00Z', now)).toBe('3h');
    expect(age('2026-01-01T12:00:00Z', now)).toBe('9d');
  });

  it('clamps the future to 0s and shows - for an unknown time', () => {
    expect(age('2026-01-10T12:00:05Z', now)).toBe('0s');
    expect(age('yesterday', now)).toBe('-');
    expect(age('1970-01-01T00:00:00.000Z', now)).toBe('-');
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(20 * 1024 * 1024)).toBe('20.0 MiB');
  });
});
