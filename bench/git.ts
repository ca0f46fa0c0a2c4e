/**
 * Clone of a local repository of a few hundred files through POST /git/clone on a real agent, beside the same
 * `git clone` run directly from Node, in the same run and interleaved. Two sources: the loopback git server with
 * HTTP Basic credentials (the agent passes them through its credential helper; the direct clone gets the same
 * helper) and a plain `file://` URL. The difference is the agent's own cost: HTTP, validation, simple-git, the
 * environment it builds.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { printTable, stats } from './lib';
import { startAgent } from '../test/helpers/agent';
import { gitSync, startGitServer } from '../test/helpers/git-server';

const FILES = 400;
const RUNS = 12;
const WARMUP = 2;

const server = await startGitServer();
const agent = await startAgent();

/** `FILES` files of a few hundred bytes to a few KiB in nested folders, in one commit. */
function repoFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < FILES; i++) {
    const line = `export const value${i} = ${i}; // ${'x'.repeat(i % 60)}\n`;
    files[`src/module-${i % 20}/file-${i}.ts`] = line.repeat(10 + (i % 50));
  }
  return files;
}

const httpUrl = server.createRepo('bench', repoFiles());
const fileUrl = `file://${path.join(server.root, 'bench.git')}`;

// The direct clone gets its credentials the way the agent passes them: a helper reading the environment.
const HELPER = `!f() { test "$1" = get || return 0; printf 'username=%s\\n' "$U"; printf 'password=%s\\n' "$P"; }; f`;

function direct(url: string, target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-c', 'credential.helper=', '-c', `credential.helper=${HELPER}`, 'clone', '--quiet', '--', url, target],
      { env: { ...process.env, U: server.username, P: server.password, GIT_TERMINAL_PROMPT: '0' } },
      (err, _stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve()),
    );
  });
}

async function viaAgent(url: string, target: string, withCredentials: boolean): Promise<void> {
  const body = withCredentials ? { url, path: target, username: server.username, password: server.password } : { url, path: target };
  const res = await agent.fetch('/git/clone', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 204) throw new Error(`clone → ${res.status}: ${await res.text()}`);
}

async function measure(url: string, withCredentials: boolean): Promise<{ cove: number[]; bare: number[] }> {
  const cove: number[] = [];
  const bare: number[] = [];
  let n = 0;
  const time = async (fn: (target: string) => Promise<void>, into: number[] | undefined) => {
    const target = path.join(agent.workdir, `clone-${n++}`);
    const t = process.hrtime.bigint();
    await fn(target);
    into?.push(Number(process.hrtime.bigint() - t) / 1e6);
    rmSync(target, { recursive: true, force: true });
  };
  const cloneAgent = (t: string) => viaAgent(url, t, withCredentials);
  const cloneDirect = (t: string) => direct(url, t);
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const keep = i >= WARMUP;
    // Alternate which goes first, so neither always runs right after the other.
    if (i % 2) {
      await time(cloneAgent, keep ? cove : undefined);
      await time(cloneDirect, keep ? bare : undefined);
    } else {
      await time(cloneDirect, keep ? bare : undefined);
      await time(cloneAgent, keep ? cove : undefined);
    }
  }
  return { cove, bare };
}

try {
  // The agent's clone holds every file.
  const check = path.join(agent.workdir, 'check');
  await viaAgent(httpUrl, check, true);
  const count = gitSync(check, ['ls-files']).trim().split('\n').length;
  if (count !== FILES) throw new Error(`expected ${FILES} files in the clone, found ${count}`);
  rmSync(check, { recursive: true, force: true });

  const http = await measure(httpUrl, true);
  const file = await measure(fileUrl, false);
  const h = { cove: stats(http.cove), bare: stats(http.bare) };
  const f = { cove: stats(file.cove), bare: stats(file.bare) };
  printTable(`git clone of ${FILES} files, ${RUNS} runs each (medians)`, [
    {
      name: 'POST /git/clone, loopback http-backend, Basic auth',
      value: h.cove.p50,
      unit: 'ms',
      baseline: h.bare.p50,
      baselineName: 'git clone',
      target: '≤ 1.5× git clone',
      ok: h.cove.p50 <= 1.5 * h.bare.p50,
    },
    {
      name: 'POST /git/clone, file://',
      value: f.cove.p50,
      unit: 'ms',
      baseline: f.bare.p50,
      baselineName: 'git clone',
      target: '≤ 1.5× git clone',
      ok: f.cove.p50 <= 1.5 * f.bare.p50,
    },
    { name: 'min POST /git/clone, http', value: h.cove.min, unit: 'ms', baseline: h.bare.min, baselineName: 'git clone' },
    { name: 'min POST /git/clone, file://', value: f.cove.min, unit: 'ms', baseline: f.bare.min, baselineName: 'git clone' },
  ]);
} finally {
  await agent.stop();
  await server.close();
}
