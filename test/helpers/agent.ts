import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI the tests start: the checkout's `cove` command, or another bundle named by COVE_CLI. */
export const COVE_BIN = process.env.COVE_CLI ?? path.join(ROOT, 'bin/cove.mjs');

export interface TestAgent {
  url: string;
  token: string;
  workdir: string;
  process: ChildProcess;
  /** fetch with the agent's bearer token. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** JSON request; throws with the body when the status is not 2xx. */
  json<T = any>(path: string, init?: RequestInit & { json?: unknown }): Promise<T>;
  /** Opens an authenticated WebSocket. */
  ws(path: string, protocols?: string[]): WebSocket;
  /** Output the agent process wrote so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts a real agent process (`node bin/cove.mjs agent`) on port 0 with a fresh work dir, and waits until it
 * prints its ready line. COVE_CHECK_RESPONSES=1: every JSON answer is parsed with its route's schema (a mismatch is a 500).
 */
export async function startAgent(
  opts: { args?: string[]; env?: Record<string, string>; workdir?: string; /** command the agent runs under, e.g. unshare */ prefix?: string[] } = {},
): Promise<TestAgent> {
  const token = randomBytes(24).toString('hex');
  const workdir = opts.workdir ?? mkdtempSync(path.join(os.tmpdir(), 'cove-agent-'));
  // A home of its own: login shells in PTYs must not depend on (or wait for) this machine's dotfiles.
  const home = mkdtempSync(path.join(os.tmpdir(), 'cove-home-'));
  const [command, ...prefixArgs] = [...(opts.prefix ?? []), process.execPath];
  const child = spawn(
    command,
    [...prefixArgs, COVE_BIN, 'agent', '--port', '0', '--host', '127.0.0.1', '--workdir', workdir, ...(opts.args ?? [])],
    { env: { ...process.env, HOME: home, COVE_CHECK_RESPONSES: process.env.COVE_CHECK_RESPONSES ?? '1', ...opts.env, COVE_AGENT_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start in 20 s:\n${out}`)), 20_000);
    const onData = () => {
      const m = /cove agent listening on (\S+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code} before it was ready:\n${out}`));
    });
  });
  const auth = { Authorization: `Bearer ${token}` };
  const agent: TestAgent = {
    url,
    token,
    workdir,
    process: child,
    fetch: (p, init = {}) => fetch(url + p, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } }),
    async json(p, init = {}) {
      const { json, ...rest } = init;
      const res = await agent.fetch(p, {
        ...rest,
        ...(json !== undefined ? { body: JSON.stringify(json), headers: { 'Content-Type': 'application/json', ...(rest.headers as Record<string, string>) } } : {}),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${p} → ${res.status}: ${text}`);
      return text ? JSON.parse(text) : undefined;
    },
    ws: (p, protocols) => new WebSocket(url.replace(/^http/, 'ws') + p, protocols, { headers: auth }),
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      if (!opts.workdir) rmSync(workdir, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
      return code;
    },
  };
  return agent;
}

/** Waits until `predicate` returns a truthy value, polling; throws after `timeoutMs`. */
export async function waitFor<T>(predicate: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * PATH for an agent whose python must import matplotlib (charts): the first python3 that does comes first. On this
 * machine the python3 on PATH may be another build than Debian's, where `scripts/test-setup.mjs` installs
 * python3-matplotlib.
 */
export function pathWithMatplotlib(): string {
  const base = process.env.PATH ?? '';
  if (spawnSync('python3', ['-c', 'import matplotlib']).status === 0) return base;
  if (spawnSync('/usr/bin/python3', ['-c', 'import matplotlib']).status === 0) return `/usr/bin:${base}`;
  throw new Error('No python3 here imports matplotlib: run `node scripts/test-setup.mjs` (it installs python3-matplotlib)');
}
