import { describe, expect, it } from 'vitest';
import { decodeEnvsProtocol, encodeEnvsProtocol, offeredProtocols, PTY_ENVS_PROTOCOL_PREFIX, ptyErrorCloseCode, ptyExitCloseCode } from './pty';

describe('PTY envs subprotocol', () => {
  it('round-trips envs through a token that is a valid subprotocol (base64url, no padding)', () => {
    const envs = { A: '1', LANG: 'C.UTF-8', EMOJI: '\u{1F600}', EMPTY: '', 'X=Y': 'a,b c' };
    const token = encodeEnvsProtocol(envs);
    expect(token.startsWith(PTY_ENVS_PROTOCOL_PREFIX)).toBe(true);
    expect(token).toMatch(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
    expect(decodeEnvsProtocol(['X-Daytona-Pty-Exit-Control', token])).toEqual(envs);
  });

  it('is undefined when no envs protocol was offered', () => {
    expect(decodeEnvsProtocol([])).toBeUndefined();
    expect(decodeEnvsProtocol(['chat', 'X-Daytona-Pty-Exit-Control'])).toBeUndefined();
  });

  it('refuses tokens that are not base64url JSON of string values, with a sentence', () => {
    const token = (text: string) => PTY_ENVS_PROTOCOL_PREFIX + Buffer.from(text).toString('base64url');
    expect(() => decodeEnvsProtocol([`${PTY_ENVS_PROTOCOL_PREFIX}!!!`])).toThrow(/base64url-encoded JSON/);
    expect(() => decodeEnvsProtocol([token('{not json')])).toThrow(/base64url-encoded JSON/);
    expect(() => decodeEnvsProtocol([token('{"A":1}')])).toThrow(/string values/);
    expect(() => decodeEnvsProtocol([token('["A"]')])).toThrow(/string values/);
    expect(() => decodeEnvsProtocol([token('null')])).toThrow(/string values/);
  });
});

describe('offeredProtocols', () => {
  it('splits the header, repeated or not, and drops empty items', () => {
    expect(offeredProtocols(undefined)).toEqual([]);
    expect(offeredProtocols('')).toEqual([]);
    expect(offeredProtocols(' a , b,,c ')).toEqual(['a', 'b', 'c']);
    expect(offeredProtocols(['a, b', 'c'])).toEqual(['a', 'b', 'c']);
  });
});

describe('PTY close codes', () => {
  it('closes 1000 after a clean exit, 1011 otherwise, and 4xxx for a failed attach within 4400-4599', () => {
    expect(ptyExitCloseCode(0)).toBe(1000);
    expect(ptyExitCloseCode(1)).toBe(1011);
    expect(ptyExitCloseCode(-1)).toBe(1011);
    expect(ptyErrorCloseCode(404)).toBe(4404);
    expect(ptyErrorCloseCode(200)).toBe(4400);
    expect(ptyErrorCloseCode(503)).toBe(4503);
    expect(ptyErrorCloseCode(700)).toBe(4599);
  });
});
