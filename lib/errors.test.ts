import { describe, expect, it } from 'vitest';
import { CoveError, ERROR_STATUS, fromOsError, toCoveError } from './errors';

const osError = (code: string, path?: string) => Object.assign(new Error(`${code}: something, open '${path ?? ''}'`), { code, path });

describe('CoveError', () => {
  it('takes its status from the table and writes the flat envelope', () => {
    const e = new CoveError('FILE_NOT_FOUND', 'Not found: /x', 'ENOENT');
    expect(e.status).toBe(404);
    expect(e.toBody('DAYTONA_DAEMON')).toEqual({ message: 'Not found: /x', code: 'FILE_NOT_FOUND', source: 'DAYTONA_DAEMON', detail: 'ENOENT' });
    expect(new CoveError('INVALID_REQUEST', 'bad').toBody('DAYTONA_API')).toEqual({ message: 'bad', code: 'INVALID_REQUEST', source: 'DAYTONA_API' });
  });

  it('gives every code a 4xx or 5xx status', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
    }
  });
});

describe('fromOsError', () => {
  it('maps OS errors to coded errors that name the path, the OS text kept as detail', () => {
    const e = fromOsError(osError('ENOENT'), '/home/u/missing');
    expect(e).toBeInstanceOf(CoveError);
    expect(e).toMatchObject({ code: 'FILE_NOT_FOUND', message: 'Not found: /home/u/missing', status: 404, detail: "ENOENT: something, open ''" });
    expect(fromOsError(osError('EACCES', '/etc/shadow'))).toMatchObject({ code: 'FILE_ACCESS_DENIED', message: 'Permission denied: /etc/shadow' });
    expect(fromOsError(osError('ENOSPC'), '/big')).toMatchObject({ code: 'INSUFFICIENT_STORAGE', status: 507 });
    expect(fromOsError(osError('EISDIR'), '/d')).toMatchObject({ code: 'IS_A_DIRECTORY' });
  });

  it('never says "directory" for a missing file (clients read that as a directory error)', () => {
    expect((fromOsError(osError('ENOENT'), '/f') as CoveError).message).not.toMatch(/directory/i);
  });

  it('returns anything else unchanged, CoveErrors included', () => {
    const plain = new Error('boom');
    const coded = new CoveError('CONFLICT', 'busy');
    expect(fromOsError(plain)).toBe(plain);
    expect(fromOsError(coded)).toBe(coded);
    expect(fromOsError(osError('ESOMETHINGNEW'))).toMatchObject({ code: 'ESOMETHINGNEW' });
    expect(fromOsError(undefined)).toBeUndefined();
    expect(fromOsError('text')).toBe('text');
  });
});

describe('toCoveError', () => {
  it('turns unknown errors into a 500 with their text as detail', () => {
    expect(toCoveError(new Error('boom'))).toMatchObject({ code: 'INTERNAL_ERROR', status: 500, detail: 'boom' });
    expect(toCoveError('thrown text')).toMatchObject({ code: 'INTERNAL_ERROR', detail: 'thrown text' });
    expect(toCoveError(osError('EEXIST', '/a'))).toMatchObject({ code: 'FILE_EXISTS' });
  });
});
