import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UsageError } from './args';

/** What `cove login` keeps: the server and a key for it. */
interface StoredConfig {
  apiUrl?: string;
  apiKey?: string;
}

/** Where the client commands send their calls, and as whom. */
export interface Connection {
  apiUrl: string;
  apiKey: string;
}

interface ConnectionEnv {
  COVE_API_URL?: string;
  COVE_API_KEY?: string;
}

export const DEFAULT_API_URL = 'http://localhost:3000/api';

/** The config file: COVE_CONFIG, else `$XDG_CONFIG_HOME/cove/config.json`, else `~/.config/cove/config.json`. */
export function configPath(env: { COVE_CONFIG?: string; XDG_CONFIG_HOME?: string }, home: string): string {
  if (env.COVE_CONFIG) return path.resolve(env.COVE_CONFIG);
  // The XDG spec ignores a relative XDG_CONFIG_HOME.
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(home, '.config');
  return path.join(base, 'cove', 'config.json');
}

/**
 * An API URL as the client uses it: http(s), no trailing slash, and `/api` added to a bare origin (the control API's
 * path on a Cove server), so `http://localhost:3000` works as well as `http://localhost:3000/api`.
 */
export function normalizeApiUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new UsageError(`"${raw}" is not a URL (for example ${DEFAULT_API_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`the API URL must be http or https, not ${url.protocol}`);
  if (url.search || url.hash) throw new UsageError('the API URL takes no query or fragment');
  const pathname = url.pathname.replace(/\/+$/, '');
  return `${url.origin}${pathname || '/api'}`;
}

/**
 * The server and key of a client command: each from its flag, else the environment, else the config file. The saved
 * key goes only to the saved server: a URL given elsewhere needs its own key, so a key never reaches a server it
 * was not made for.
 */
export function resolveConnection(flags: { apiUrl?: string; apiKey?: string }, env: ConnectionEnv, stored: StoredConfig): Connection {
  const given = flags.apiUrl ?? env.COVE_API_URL;
  const apiUrl = normalizeApiUrl(given ?? stored.apiUrl ?? DEFAULT_API_URL);
  const storedUrl = stored.apiUrl === undefined ? undefined : normalizeApiUrl(stored.apiUrl);
  const storedKey = stored.apiKey && (storedUrl === apiUrl || (given === undefined && storedUrl === undefined)) ? stored.apiKey : undefined;
  const apiKey = flags.apiKey ?? env.COVE_API_KEY ?? storedKey;
  if (!apiKey) {
    const login = given === undefined ? 'cove login' : `cove login --api-url ${apiUrl}`;
    throw new Error(`no API key for ${apiUrl}: run \`${login}\` (or set COVE_API_KEY, or pass --api-key)`);
  }
  return { apiUrl, apiKey };
}

/** The config file's contents; an empty config when there is no file. */
export function readConfig(file: string): StoredConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON: fix or delete it, then run \`cove login\``);
  }
  const config: StoredConfig = {};
  if (parsed && typeof parsed === 'object') {
    const { apiUrl, apiKey } = parsed as Record<string, unknown>;
    if (typeof apiUrl === 'string') config.apiUrl = apiUrl;
    if (typeof apiKey === 'string') config.apiKey = apiKey;
  }
  return config;
}

/**
 * Writes the config file atomically: a new file created with mode 0600 (never readable by others, not even for a
 * moment) in a folder created with mode 0700, then renamed over the old one.
 */
export function writeConfig(file: string, config: StoredConfig): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(config, null, 2)}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

/** The connection of a client command from its flags, this process's environment and the config file. */
export function loadConnection(values: { 'api-url'?: string; 'api-key'?: string }): Connection {
  const stored = readConfig(configPath(process.env, os.homedir()));
  return resolveConnection({ apiUrl: values['api-url'], apiKey: values['api-key'] }, process.env, stored);
}
