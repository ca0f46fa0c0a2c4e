import { spawn, spawnSync, type ChildProcess, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Daytona } from '@daytonaio/sdk';
import { COVE_BIN } from './agent';
import { requireDocker } from './docker';

/** The Node flags on the first line of bin/cove.mjs (`#!/usr/bin/env -S node …`): the server runs as `cove serve` does. */
const BIN_FLAGS = readFileSync(COVE_BIN, 'utf8').split('\n', 1)[0].split(/\s+/).filter((a) => a.startsWith('--'));

export interface TestCove {
  url: string;
  apiUrl: string;
  apiKey: string;
  dataDir: string;
  process: ChildProcess;
  /** A Daytona SDK client pointed at this server. */
  daytona(apiKey?: string): Daytona;
  /** fetch against the API with a key (the admin key by default). */
  api(p: string, init?: RequestInit & { key?: string | null }): Promise<Response>;
  /** Containers of this server (its instance label), running or not, optionally with another label. */
  containers(label?: string): string[];
  output(): string;
  /** Runs the real CLI (`cove keys …`) against this server's data dir. */
  cli(...args: string[]): { stdout: string; stderr: string; status: number | null };
  /** A new non-admin API key (`cove keys create --name name …flags`): its secret and id. */
  newKey(name: string, ...flags: string[]): { key: string; id: string };
  /** A new non-admin API key with an SDK client of its own. */
  newClient(name: string, ...flags: string[]): { key: string; id: string; daytona: Daytona };
  /** SIGTERM: the server exits and leaves its containers for the next start. */
  stop(): Promise<number | null>;
  /** Stops the server and removes its containers, volumes and data. */
  destroy(): Promise<void>;
}

/**
 * Starts a real `cove serve` on port 0 with a fresh data dir (or a given one, to test restarts), waits for its ready
 * line. Its first start in a run builds the images (minutes); later ones find them. COVE_CHECK_RESPONSES=1: every JSON
 * answer of the control API is parsed with its route's schema (a mismatch is a 500).
 */
export async function startCove(opts: { pool?: number; dataDir?: string; apiKey?: string; /** more `cove serve` flags */ args?: string[]; /** more environment of the server */ env?: Record<string, string>; /** another engine, for the server and the docker commands here */ dockerHost?: string } = {}): Promise<TestCove> {
  // The docker commands here run synchronously: they must not go through anything this process serves (a relay).
  const dockerEnv = { ...process.env, ...(opts.dockerHost ? { DOCKER_HOST: opts.dockerHost } : {}) };
  await requireDocker();
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'cove-data-'));
  const apiKey = opts.apiKey ?? `test-${randomBytes(24).toString('hex')}`;
  const instance = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
  // COVE_NODE_FLAGS passes Node flags to the server (for instance --cpu-prof when profiling a benchmark).
  const nodeFlags = (process.env.COVE_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...BIN_FLAGS, ...nodeFlags, COVE_BIN, 'serve', '--port', '0', '--ssh-port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--pool', String(opts.pool ?? 2), '--log-level', 'warn', ...(opts.args ?? [])], {
    env: { ...process.env, COVE_CHECK_RESPONSES: process.env.COVE_CHECK_RESPONSES ?? '1', COVE_API_KEY: apiKey, ...(opts.dockerHost ? { DOCKER_HOST: opts.dockerHost } : {}), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cove serve did not start in 15 min:\n${out.slice(-4000)}`)), 15 * 60_000);
    const onData = () => {
      // The whole line: a chunk may end inside it (the URL cut short, the SSH port not there yet).
      const m = /cove listening on (\S+)[^\n]*\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`cove serve exited with ${code}:\n${out.slice(-4000)}`));
    });
  });
  const apiUrl = `${url.replace('127.0.0.1', 'localhost')}/api`;
  const cove: TestCove = {
    url,
    apiUrl,
    apiKey,
    dataDir,
    process: child,
    daytona: (key = apiKey) => new Daytona({ apiKey: key, apiUrl, target: 'local' }),
    api: (p, init = {}) => {
      const { key = apiKey, ...rest } = init;
      const headers: Record<string, string> = { ...(rest.headers as Record<string, string>) };
      if (key) headers.Authorization = `Bearer ${key}`;
      if (rest.body) headers['Content-Type'] ??= 'application/json';
      return fetch(`${apiUrl}${p}`, { ...rest, headers });
    },
    containers: (label) =>
      execFileSync('docker', ['ps', '-aq', '--filter', `label=dev.cove.instance=${instance}`, ...(label ? ['--filter', `label=${label}`] : [])], {
        encoding: 'utf8',
        env: dockerEnv,
      })
        .split('\n')
        .filter(Boolean),
    output: () => out,
    cli: (...args) => {
      const r = spawnSync(process.execPath, [COVE_BIN, ...args, '--data-dir', dataDir], { encoding: 'utf8', env: dockerEnv });
      return { stdout: r.stdout.trim(), stderr: r.stderr.trim(), status: r.status };
    },
    newKey: (name, ...flags) => {
      const r = cove.cli('keys', 'create', '--name', name, ...flags);
      if (r.status !== 0) throw new Error(`cove keys create failed: ${r.stderr}`);
      return { key: r.stdout, id: /created key (\S+)/.exec(r.stderr)![1] };
    },
    newClient(name, ...flags) {
      const made = cove.newKey(name, ...flags);
      return { ...made, daytona: cove.daytona(made.key) };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      return exited;
    },
    async destroy() {
      await cove.stop();
      const ids = cove.containers();
      if (ids.length) execFileSync('docker', ['rm', '-f', ...ids], { stdio: 'ignore', env: dockerEnv });
      const volumes = execFileSync('docker', ['volume', 'ls', '-q', '--filter', `label=dev.cove.instance=${instance}`], { encoding: 'utf8', env: dockerEnv }).split('\n').filter(Boolean);
      if (volumes.length) execFileSync('docker', ['volume', 'rm', '-f', ...volumes], { stdio: 'ignore', env: dockerEnv });
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return cove;
}

/** A rejection's HTTP status and message, as the SDK reports them; throws when the call succeeds. */
export async function failure(p: Promise<unknown>): Promise<{ statusCode?: number; message: string }> {
  try {
    await p;
  } catch (err) {
    return { statusCode: (err as { statusCode?: number }).statusCode, message: (err as Error).message };
  }
  throw new Error('expected the call to fail');
}
