/**
 * Sandbox lifecycle through a real `cove serve` (its REST API), beside Docker doing the same work directly on a
 * container of the same image with the same limits, Cove and Docker runs taking turns in one process:
 * - stop → start (start returns once the agent answers) vs `docker stop` + `docker start` until the agent answers;
 * - pause → start (which resumes) vs `docker pause` + `docker unpause`;
 * - archive and restore of a sandbox holding 1 GiB of random bytes vs `docker export | zstd -1 -T0` into a file and
 *   `zstd -d | docker import` + `docker run` of the imported image until its agent answers;
 * - fork of the running sandbox holding that 1 GiB vs `docker commit` + `docker run` until the agent answers.
 * Stop/start and pause/resume are one engine call each: Docker does them twice, with the docker CLI (what a user
 * types) and through the Engine API (as Cove calls it), so that the CLI's own start-up is not counted as Cove's gain.
 *
 *   npm run build && node --import tsx bench/lifecycle.ts
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, fsyncSync, closeSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { startCove, type TestCove } from '../test/helpers/cove';
import { agentAnswers, containerIp, percentile, printTable, runAgentContainer, SANDBOX_IMAGE, stats, type AgentContainer } from './lib';

const STOP_RUNS = 8;
const PAUSE_RUNS = 15;
const ARCHIVE_RUNS = 3;
const FORK_RUNS = 3;
const BIG_BYTES = 1024 ** 3;
const WRITE_BIG = 'head -c 1024M /dev/urandom > /root/big';
const SIZE_OF_BIG = 'stat -c %s /root/big';

const run = promisify(execFile);
const docker = async (...args: string[]) => (await run('docker', args, { maxBuffer: 16 << 20 })).stdout.trim();
/** A shell pipeline (bash, so that a failing first command fails it), `$1`… being `args`. */
const pipeline = (script: string, ...args: string[]) => run('bash', ['-c', `set -euo pipefail; ${script}`, 'bash', ...args], { maxBuffer: 16 << 20 });
const engine = new Dockerode();

const since = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;

interface SandboxAnswer {
  id: string;
  state: string;
  cpu: number;
  memory: number;
}

async function call(cove: TestCove, p: string, body?: object): Promise<SandboxAnswer> {
  const res = await cove.api(p, { method: 'POST', ...(body ? { body: JSON.stringify(body) } : {}) });
  const json = (await res.json()) as SandboxAnswer;
  if (!res.ok) throw new Error(`POST ${p}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Runs a command in the sandbox through the proxy; its output, or an error when it fails. */
async function exec(cove: TestCove, id: string, command: string): Promise<string> {
  const res = await fetch(`${cove.url}/toolbox/${id}/process/execute`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${cove.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ command, timeout: 600 }),
  });
  const json = (await res.json()) as { exitCode: number; result: string };
  if (!res.ok || json.exitCode !== 0) throw new Error(`${command}: ${res.status} ${JSON.stringify(json).slice(0, 500)}`);
  return json.result;
}

/** Milliseconds of each step of one run, and of the whole. */
type Steps = { first: number; second: number; total: number };
const collect = () => ({ first: [] as number[], second: [] as number[], total: [] as number[] });
const push = (into: ReturnType<typeof collect>, s: Steps) => {
  into.first.push(s.first);
  into.second.push(s.second);
  into.total.push(s.total);
};

async function timeTwo(first: () => Promise<unknown>, second: () => Promise<unknown>): Promise<Steps> {
  const t0 = process.hrtime.bigint();
  await first();
  const a = since(t0);
  const t1 = process.hrtime.bigint();
  await second();
  const b = since(t1);
  return { first: a, second: b, total: a + b };
}

const cove = await startCove({ pool: 1 });
const work = mkdtempSync(path.join(os.tmpdir(), 'cove-bench-lifecycle-'));
const containers = new Set<string>();
const images = new Set<string>();
try {
  // Root and env-free but not from the pool (user: 'root' makes it a cold start): its own container, labelled.
  const sandbox = await call(cove, '/sandbox', { user: 'root', autoStopInterval: 0 });
  const id = sandbox.id;
  // The Docker baseline: the same image and limits as a sandbox (Docker's init as PID 1, the agent stopping on SIGTERM).
  const limits = ['--init', '--stop-signal', 'SIGTERM', '--cpus', String(sandbox.cpu), '--memory', `${sandbox.memory}g`, '--memory-swap', `${sandbox.memory}g`, '--pids-limit', '1024'];
  let base: AgentContainer = runAgentContainer({ args: limits });
  containers.add(base.id);
  await agentAnswers(base.ip, base.token);

  // 1. stop → start, the agent answering at the end. Run -1 is a warm-up.
  const coveStop = collect();
  const cliStop = collect();
  const apiStop = collect();
  for (let i = -1; i < STOP_RUNS; i++) {
    const c = await timeTwo(
      () => call(cove, `/sandbox/${id}/stop`),
      () => call(cove, `/sandbox/${id}/start`),
    );
    const d = await timeTwo(
      () => docker('stop', base.id),
      async () => {
        await docker('start', base.id);
        const ip = await docker('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', base.id);
        await agentAnswers(ip, base.token);
      },
    );
    const container = engine.getContainer(base.id);
    const e = await timeTwo(
      () => container.stop({ t: 10 }),
      async () => {
        await container.start();
        const info = await container.inspect();
        await agentAnswers(Object.values(info.NetworkSettings.Networks)[0].IPAddress, base.token);
      },
    );
    if (i < 0) continue;
    push(coveStop, c);
    push(cliStop, d);
    push(apiStop, e);
  }
  base.ip = containerIp(base.id);

  // 2. pause → start (resume).
  const covePause = collect();
  const cliPause = collect();
  const apiPause = collect();
  for (let i = -1; i < PAUSE_RUNS; i++) {
    const c = await timeTwo(
      () => call(cove, `/sandbox/${id}/pause`),
      () => call(cove, `/sandbox/${id}/start`),
    );
    const d = await timeTwo(
      () => docker('pause', base.id),
      () => docker('unpause', base.id),
    );
    const container = engine.getContainer(base.id);
    const e = await timeTwo(
      () => container.pause(),
      () => container.unpause(),
    );
    if (i < 0) continue;
    push(covePause, c);
    push(cliPause, d);
    push(apiPause, e);
  }

  // 3. archive and restore with 1 GiB of random bytes written in each.
  await exec(cove, id, WRITE_BIG);
  execFileSync('docker', ['exec', base.id, 'sh', '-c', WRITE_BIG]);
  // `docker import` keeps files, not the image's configuration: give it back what the agent needs to start.
  const config = (await engine.getImage(SANDBOX_IMAGE).inspect()).Config;
  const changes = [
    `ENTRYPOINT ${JSON.stringify(config.Entrypoint)}`,
    ...(config.Cmd?.length ? [`CMD ${JSON.stringify(config.Cmd)}`] : []),
    ...(config.WorkingDir ? [`WORKDIR ${config.WorkingDir}`] : []),
    ...(config.Env ?? []).map((e) => `ENV ${e.slice(0, e.indexOf('='))}=${JSON.stringify(e.slice(e.indexOf('=') + 1))}`),
  ].flatMap((c) => ['--change', c]);
  const archive = path.join(cove.dataDir, 'archives', `${id}.tar.zst`);
  const exported = path.join(work, 'export.tar.zst');
  const coveArchive: number[] = [];
  const coveRestore: number[] = [];
  const coveBytes: number[] = [];
  const dockerArchive: number[] = [];
  const dockerRestore: number[] = [];
  const dockerBytes: number[] = [];
  let baseImage: string | undefined;
  for (let i = 0; i < ARCHIVE_RUNS; i++) {
    await call(cove, `/sandbox/${id}/stop`);
    let t = process.hrtime.bigint();
    const archived = await call(cove, `/sandbox/${id}/archive`);
    coveArchive.push(since(t));
    if (archived.state !== 'archived' || cove.containers(`dev.cove.sandbox=${id}`).length !== 0) throw new Error(`archive left ${archived.state}, its container still there`);
    coveBytes.push(statSync(archive).size);
    t = process.hrtime.bigint();
    await call(cove, `/sandbox/${id}/start`);
    coveRestore.push(since(t));
    if (Number(await exec(cove, id, SIZE_OF_BIG)) !== BIG_BYTES) throw new Error('the restored sandbox lost its 1 GiB');

    await docker('stop', base.id);
    t = process.hrtime.bigint();
    // Cove's archive is durable (fsync) and removes the container before it returns: so does this.
    await pipeline('docker export "$1" | zstd -1 -T0 -q -c > "$2"', base.id, exported);
    const fd = openSync(exported, 'r');
    fsyncSync(fd);
    closeSync(fd);
    await docker('rm', base.id);
    dockerArchive.push(since(t));
    containers.delete(base.id);
    dockerBytes.push(statSync(exported).size);
    if (baseImage) {
      await docker('rmi', baseImage);
      images.delete(baseImage);
    }
    baseImage = `cove-bench-restored:${randomBytes(6).toString('hex')}`;
    images.add(baseImage);
    t = process.hrtime.bigint();
    await pipeline('zstd -d -q -c "$1" | docker import "${@:3}" - "$2" >/dev/null', exported, baseImage, ...changes);
    base = runAgentContainer({ image: baseImage, args: limits, token: base.token });
    containers.add(base.id);
    await agentAnswers(base.ip, base.token);
    // Cove deletes the archive once the sandbox runs again.
    rmSync(exported);
    dockerRestore.push(since(t));
    if (Number(execFileSync('docker', ['exec', base.id, 'sh', '-c', SIZE_OF_BIG], { encoding: 'utf8' })) !== BIG_BYTES) throw new Error('the imported container lost its 1 GiB');
  }

  // 4. fork of a running sandbox holding the 1 GiB: a new started sandbox with its files. The bytes are written anew
  // in both first, so that they sit in each container's own writable layer (the imported baseline has them in its image).
  await exec(cove, id, `rm /root/big && ${WRITE_BIG}`);
  execFileSync('docker', ['exec', base.id, 'sh', '-c', `rm /root/big && ${WRITE_BIG}`]);
  const coveFork: number[] = [];
  const dockerFork: number[] = [];
  for (let i = 0; i < FORK_RUNS; i++) {
    let t = process.hrtime.bigint();
    const fork = await call(cove, `/sandbox/${id}/fork`, {});
    coveFork.push(since(t));
    if (fork.state !== 'started' || Number(await exec(cove, fork.id, SIZE_OF_BIG)) !== BIG_BYTES) throw new Error('the fork lost its 1 GiB');
    await cove.api(`/sandbox/${fork.id}`, { method: 'DELETE' });

    const image = `cove-bench-fork:${randomBytes(6).toString('hex')}`;
    images.add(image);
    t = process.hrtime.bigint();
    await docker('commit', base.id, image);
    const copy = runAgentContainer({ image, args: limits });
    containers.add(copy.id);
    await agentAnswers(copy.ip, copy.token);
    dockerFork.push(since(t));
    if (Number(execFileSync('docker', ['exec', copy.id, 'sh', '-c', SIZE_OF_BIG], { encoding: 'utf8' })) !== BIG_BYTES) throw new Error('the committed copy lost its 1 GiB');
    await docker('rm', '-f', copy.id);
    containers.delete(copy.id);
    await docker('rmi', image);
    images.delete(image);
  }

  const cli = 'docker CLI';
  const api = 'Engine API';
  const rows = (coveRuns: ReturnType<typeof collect>, cliRuns: ReturnType<typeof collect>, apiRuns: ReturnType<typeof collect>, names: [string, string], says: [string, string, string]) => {
    const [c, d, e] = [coveRuns, cliRuns, apiRuns].map((r) => ({ first: stats(r.first), second: stats(r.second), total: { p50: percentile(r.total, 0.5), p90: percentile(r.total, 0.9) } }));
    const both = `${names[0]} → ${names[1]}`;
    return [
      { name: `${both} p50`, value: c.total.p50, unit: 'ms', baseline: d.total.p50, baselineName: cli, compared: says[0] },
      { name: `${both} p90`, value: c.total.p90, unit: 'ms', baseline: d.total.p90, baselineName: cli, compared: says[0] },
      { name: `${both} p50`, value: c.total.p50, unit: 'ms', baseline: e.total.p50, baselineName: api, compared: says[1] },
      { name: `${both} p90`, value: c.total.p90, unit: 'ms', baseline: e.total.p90, baselineName: api, compared: says[1] },
      { name: `${names[0]} p50`, value: c.first.p50, unit: 'ms', baseline: d.first.p50, baselineName: cli, compared: says[2] },
      { name: `${names[1]} p50`, value: c.second.p50, unit: 'ms', baseline: d.second.p50, baselineName: cli, compared: says[2] },
      { name: `${names[0]} p50`, value: c.first.p50, unit: 'ms', baseline: e.first.p50, baselineName: api, compared: says[2] },
      { name: `${names[1]} p50`, value: c.second.p50, unit: 'ms', baseline: e.second.p50, baselineName: api, compared: says[2] },
    ];
  };
  printTable(
    `Stop → start (${STOP_RUNS} runs each, after 1 warm-up)`,
    rows(coveStop, cliStop, apiStop, ['stop', 'start'], [
      'POST /sandbox/{id}/stop + /start (returns once the agent answers) vs `docker stop` + `docker start` + poll GET /version',
      'the same vs the Engine API (dockerode) stop + start + inspect + poll GET /version, no CLI',
      'each step alone, same pair',
    ]),
  );
  printTable(
    `Pause → start (resume) (${PAUSE_RUNS} runs each, after 1 warm-up)`,
    rows(covePause, cliPause, apiPause, ['pause', 'resume'], [
      'POST /sandbox/{id}/pause + /start vs `docker pause` + `docker unpause`',
      'the same vs the Engine API (dockerode) pause + unpause, no CLI',
      'each step alone, same pair',
    ]),
  );
  const [ca, cr, da, dr] = [coveArchive, coveRestore, dockerArchive, dockerRestore].map((r) => ({ p50: percentile(r, 0.5), max: percentile(r, 1) }));
  const MiB = (bytes: number[]) => stats(bytes).p50 / 1024 ** 2;
  printTable(`Archive and restore, 1 GiB of random bytes written in the sandbox (${ARCHIVE_RUNS} runs each)`, [
    { name: 'archive p50', value: ca.p50, unit: 'ms', baseline: da.p50, baselineName: 'docker export | zstd', compared: 'POST /sandbox/{id}/archive of the stopped sandbox (its writable layer → zstd -1 -T0, fsync, container removed) vs `docker export` of the stopped container (whole filesystem: image + 1 GiB) | zstd -1 -T0 > file, fsync, `docker rm`' },
    { name: 'archive max', value: ca.max, unit: 'ms', baseline: da.max, baselineName: 'docker export | zstd', compared: 'same' },
    { name: 'restore p50', value: cr.p50, unit: 'ms', baseline: dr.p50, baselineName: 'zstd -d | docker import + docker run', compared: 'POST /sandbox/{id}/start of the archived sandbox (new container, layer unpacked, agent answers, archive deleted) vs `zstd -d | docker import` + `docker run -d` of the image + poll GET /version, file deleted' },
    { name: 'restore max', value: cr.max, unit: 'ms', baseline: dr.max, baselineName: 'zstd -d | docker import + docker run', compared: 'same' },
    { name: 'archive size', value: MiB(coveBytes), unit: 'MiB', baseline: MiB(dockerBytes), baselineName: 'docker export | zstd', compared: '<dataDir>/archives/<id>.tar.zst vs the exported file' },
  ]);
  const [cf, df] = [coveFork, dockerFork].map((r) => ({ p50: percentile(r, 0.5), max: percentile(r, 1) }));
  printTable(`Fork of a running sandbox with 1 GiB in its writable layer (${FORK_RUNS} runs each)`, [
    { name: 'fork p50', value: cf.p50, unit: 'ms', baseline: df.p50, baselineName: 'docker commit + docker run', compared: 'POST /sandbox/{id}/fork (returns the fork started, its agent answering) vs `docker commit` of the running container + `docker run -d` of the image + poll GET /version' },
    { name: 'fork max', value: cf.max, unit: 'ms', baseline: df.max, baselineName: 'docker commit + docker run', compared: 'same' },
  ]);
} finally {
  // Each on its own: one that fails (already gone) does not keep the others.
  const quietly = (args: string[]) => {
    try {
      execFileSync('docker', args, { stdio: 'ignore' });
    } catch {
      /* gone already */
    }
  };
  for (const c of containers) quietly(['rm', '-f', c]);
  for (const image of images) quietly(['rmi', '-f', image]);
  rmSync(work, { recursive: true, force: true });
  await cove.destroy();
}
process.exit(0);
