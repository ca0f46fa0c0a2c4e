import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configPath, DEFAULT_API_URL, normalizeApiUrl, readConfig, resolveConnection, writeConfig } from './config';

describe('configPath', () => {
  it('prefers COVE_CONFIG, then XDG_CONFIG_HOME, then ~/.config', () => {
    expect(configPath({ COVE_CONFIG: '/etc/cove.json', XDG_CONFIG_HOME: '/x' }, '/home/a')).toBe('/etc/cove.json');
    expect(configPath({ XDG_CONFIG_HOME: '/x' }, '/home/a')).toBe('/x/cove/config.json');
    expect(configPath({}, '/home/a')).toBe('/home/a/.config/cove/config.json');
  });

  it('ignores a relative XDG_CONFIG_HOME, as the spec says', () => {
    expect(configPath({ XDG_CONFIG_HOME: 'relative' }, '/home/a')).toBe('/home/a/.config/cove/config.json');
  });
});

describe('normalizeApiUrl', () => {
  it('adds /api to a bare origin and drops trailing slashes', () => {
    expect(normalizeApiUrl('http://localhost:3000')).toBe('http://localhost:3000/api');
    expect(normalizeApiUrl('http://localhost:3000/')).toBe('http://localhost:3000/api');
    expect(normalizeApiUrl('https://cove.example.com/api/')).toBe('https://cove.example.com/api');
    expect(normalizeApiUrl('https://example.com/cove/api')).toBe('https://example.com/cove/api');
  });

  it('refuses what is not an http(s) URL', () => {
    expect(() => normalizeApiUrl('localhost:3000')).toThrow(/http or https/);
    expect(() => normalizeApiUrl('not a url')).toThrow(/not a URL/);
    expect(() => normalizeApiUrl('ftp://x')).toThrow(/http or https/);
  });
});

describe('resolveConnection', () => {
  const stored = { apiUrl: 'http://saved:3000/api', apiKey: 'saved-key' };

  it('takes flags over the environment over the config file', () => {
    expect(resolveConnection({ apiUrl: 'http://flag/api', apiKey: 'k1' }, { COVE_API_URL: 'http://env/api', COVE_API_KEY: 'k2' }, stored)).toEqual({ apiUrl: 'http://flag/api', apiKey: 'k1' });
    expect(resolveConnection({}, { COVE_API_URL: 'http://env/api', COVE_API_KEY: 'k2' }, stored)).toEqual({ apiUrl: 'http://env/api', apiKey: 'k2' });
    expect(resolveConnection({}, {}, stored)).toEqual({ apiUrl: 'http://saved:3000/api', apiKey: 'saved-key' });
    expect(resolveConnection({ apiKey: 'k1' }, {}, {})).toEqual({ apiUrl: DEFAULT_API_URL, apiKey: 'k1' });
  });

  it('sends the saved key only to the saved server', () => {
    expect(resolveConnection({ apiUrl: 'http://saved:3000' }, {}, stored).apiKey).toBe('saved-key');
    expect(() => resolveConnection({ apiUrl: 'http://elsewhere/api' }, {}, stored)).toThrow('cove login --api-url http://elsewhere/api');
    expect(() => resolveConnection({}, { COVE_API_URL: 'http://elsewhere/api' }, stored)).toThrow(/no API key for http:\/\/elsewhere\/api/);
  });

  it('names cove login when there is no key at all', () => {
    expect(() => resolveConnection({}, {}, {})).toThrow(/run `cove login`/);
  });
});

describe('the config file', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is written with mode 0600 in a folder made with mode 0700, and read back', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cove-config-'));
    const file = path.join(dir, 'nested', 'config.json');
    writeConfig(file, { apiUrl: 'http://a/api', apiKey: 'secret' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(readConfig(file)).toEqual({ apiUrl: 'http://a/api', apiKey: 'secret' });
  });

  it('replaces a file that was readable by others with a private one', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cove-config-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, '{}', { mode: 0o644 });
    writeConfig(file, { apiKey: 'secret' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ apiKey: 'secret' });
  });

  it('reads a missing file as empty, ignores fields of other types, and says which file is broken', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cove-config-'));
    expect(readConfig(path.join(dir, 'none.json'))).toEqual({});
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ apiUrl: 3, apiKey: 'k' }));
    expect(readConfig(file)).toEqual({ apiKey: 'k' });
    writeFileSync(file, '{nope');
    expect(() => readConfig(file)).toThrow(`${file} is not valid JSON`);
  });
});
