import { describe, expect, it } from 'vitest';
import { expectPositionals, isUsageError, parseAssignments, parseCommand, parseWholeNumber, UsageError } from './args';

describe('parseCommand', () => {
  it('knows the common options beside the command’s own', () => {
    const { values, positionals } = parseCommand(['box', '--json', '--api-url', 'http://x/api', '--cpu', '2'], { cpu: { type: 'string' } });
    expect(values).toEqual({ json: true, 'api-url': 'http://x/api', cpu: '2' });
    expect(positionals).toEqual(['box']);
  });

  it('refuses unknown options with an error that counts as a usage error', () => {
    let thrown: unknown;
    try {
      parseCommand(['--nope'], {});
    } catch (err) {
      thrown = err;
    }
    expect(isUsageError(thrown)).toBe(true);
    expect(isUsageError(new UsageError('x'))).toBe(true);
    expect(isUsageError(new Error('x'))).toBe(false);
  });
});

describe('parseAssignments', () => {
  it('reads NAME=VALUE pairs, values may hold =', () => {
    expect(parseAssignments(['A=1', 'B=x=y', 'C='], '-e')).toEqual({ A: '1', B: 'x=y', C: '' });
    expect(parseAssignments(undefined, '-e')).toEqual({});
  });

  it('refuses a pair without a name', () => {
    expect(() => parseAssignments(['=1'], '--label')).toThrow('--label wants NAME=VALUE, got "=1"');
    expect(() => parseAssignments(['A'], '-e')).toThrow(UsageError);
  });
});

describe('parseWholeNumber', () => {
  it('reads whole numbers within bounds', () => {
    expect(parseWholeNumber('4', '--cpu', 1)).toBe(4);
    expect(parseWholeNumber(undefined, '--cpu', 1)).toBeUndefined();
  });

  it('refuses fractions, words and numbers out of bounds', () => {
    expect(() => parseWholeNumber('1.5', '--cpu', 1)).toThrow(/--cpu wants a whole number from 1/);
    expect(() => parseWholeNumber('two', '--cpu', 1)).toThrow(UsageError);
    expect(() => parseWholeNumber('0', '--cpu', 1)).toThrow(UsageError);
    expect(() => parseWholeNumber('70000', 'PORT', 1, 65535)).toThrow('PORT wants a whole number from 1 to 65535, got "70000"');
  });
});

describe('expectPositionals', () => {
  it('names what is missing and what is too much', () => {
    expect(expectPositionals(['a', 'b'], ['ID', 'PORT'])).toEqual(['a', 'b']);
    expect(() => expectPositionals(['a'], ['ID', 'PORT'])).toThrow('missing PORT');
    expect(() => expectPositionals(['a', 'b', 'c'], ['ID', 'PORT'])).toThrow('unexpected argument "c"');
    expect(expectPositionals(['a', 'b'], ['ID', 'SESSION', 'COMMAND_ID'], 1)).toEqual(['a', 'b']);
  });
});
