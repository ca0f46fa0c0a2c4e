import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { CORS_ALLOW_HEADERS, createCors, normalizeOrigin } from './cors';

describe('normalizeOrigin', () => {
  it('gives scheme://host[:port] in lower case, default ports dropped, and * as it is', () => {
    expect(normalizeOrigin('*')).toBe('*');
    expect(normalizeOrigin(' HTTPS://App.Example.com ')).toBe('https://app.example.com');
    expect(normalizeOrigin('https://app.example.com:443')).toBe('https://app.example.com');
    expect(normalizeOrigin('http://localhost:5173/')).toBe('http://localhost:5173');
  });

  it('refuses what is not an origin', () => {
    for (const bad of ['app.example.com', 'ftp://h', 'https://h/path', 'https://h?x', 'https://h#x', 'https://u:p@h', 'https://h/?', '', 'null']) {
      expect(normalizeOrigin(bad), bad).toBeUndefined();
    }
  });
});

/** A request and a response that record what the handler sets. */
function exchange(headers: Record<string, string>, method = 'GET') {
  const set: Record<string, string> = {};
  let status: number | undefined;
  let ended = false;
  const res = {
    setHeader: (k: string, v: string) => void (set[k] = v),
    writeHead: (s: number, h: Record<string, string>) => {
      status = s;
      Object.assign(set, h);
    },
    end: () => void (ended = true),
  } as unknown as ServerResponse;
  return { req: { method, headers } as unknown as IncomingMessage, res, result: () => ({ set, status, ended }) };
}

describe('createCors', () => {
  it('answers preflights 204 before any auth, allowing the origin only when listed', () => {
    const cors = createCors(['https://app.example.com']);
    const ok = exchange({ origin: 'https://app.example.com', 'access-control-request-method': 'POST' }, 'OPTIONS');
    expect(cors.handle(ok.req, ok.res)).toBe(true);
    expect(ok.result()).toMatchObject({ status: 204, ended: true });
    expect(ok.result().set).toMatchObject({ 'Access-Control-Allow-Origin': 'https://app.example.com', 'Access-Control-Allow-Headers': CORS_ALLOW_HEADERS, Vary: 'Origin' });
    const other = exchange({ origin: 'https://evil.example', 'access-control-request-method': 'POST' }, 'OPTIONS');
    expect(cors.handle(other.req, other.res)).toBe(true);
    expect(other.result().set['Access-Control-Allow-Origin']).toBeUndefined();
  });

  it('lets real requests and plain OPTIONS through, with the origin header for allowed origins', () => {
    const cors = createCors(['*']);
    const real = exchange({ origin: 'https://any.example' });
    expect(cors.handle(real.req, real.res)).toBe(false);
    expect(real.result().set).toMatchObject({ 'Access-Control-Allow-Origin': '*' });
    expect(real.result().set.Vary).toBeUndefined();
    const options = exchange({}, 'OPTIONS');
    expect(cors.handle(options.req, options.res)).toBe(false);
  });

  it('allows no origin when none is configured, and says nothing', () => {
    const cors = createCors([]);
    const x = exchange({ origin: 'https://app.example.com' });
    cors.handle(x.req, x.res);
    expect(x.result().set).toEqual({});
  });
});

describe('allowsOrigin', () => {
  it('allows requests without Origin, configured origins (in any case) and any origin under *', () => {
    const cors = createCors(['https://app.example.com']);
    expect(cors.allowsOrigin(undefined)).toBe(true);
    expect(cors.allowsOrigin('https://App.Example.com')).toBe(true);
    for (const other of ['https://evil.example', 'null', '', 'https://app.example.com.evil.example']) expect(cors.allowsOrigin(other), other).toBe(false);
    expect(createCors([]).allowsOrigin('https://app.example.com')).toBe(false);
    expect(createCors(['*']).allowsOrigin('null')).toBe(true);
  });
});
