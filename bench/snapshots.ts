/**
 * Custom environments through a real `cove serve` (its REST API and the published SDK), beside Docker doing the same
 * work directly, taking turns in one process:
 * - snapshot of a small declarative image (REST, its build logs followed to their end) (`Image.base(…).runCommands(…).env(…).workdir(…)`): its first build (a
 *   step no cache has) vs `docker build` of the same Dockerfile, and the same Dockerfile again — from the same API key
 *   (the image exists: nothing to build) and from another key (a new image, every step from the engine's layer cache)
 *   vs `docker build` again (every step from the cache);
 * - the same with a local folder (`addLocalDir`, 5 MiB in 50 files): the SDK uploads it and Cove builds, vs
 *   `docker build` with that folder in its context;
 * - create from a custom snapshot with its warm pool (`--pool NAME=N`) and without (a cold start), until the sandbox
 *   answers, vs `docker run -d` of the snapshot's image until its agent answers.
 *
 *   npm run build && node --import tsx bench/snapshots.ts
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Image } from '@daytonaio/sdk';
import { startCove, type TestCove } from '../test/helpers/cove';
import { agentAnswers, percentile, printTable, runAgentContainer, SANDBOX_IMAGE, type Row } from './lib';

const BUILD_RUNS = 5;
const CREATE_RUNS = 10;
const POOL = 3;

const run = promisify(execFile);
const docker = async (...args: string[]) => (await run('docker', args, { maxBuffer: 64 << 20, env: { ...process.env, DOCKER_BUILDKIT: '0' } })).stdout.trim();
const since = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;

/** A small declarative image; `token` makes its RUN step one no cache has. */
const imageOf = (token: string) =>
  Image.base(SANDBOX_IMAGE)
    .runCommands(`echo ${token} > /tmp/token && python3 -c "print(sum(range(1000)))" > /tmp/sum`)
    .env({ BENCH: '1' })
    .workdir('/home/cove');

/**
 * Times a snapshot of that image until it is active: the SDK's own upload of its local files (when it has any), then
 * `POST /api/snapshots` and its build logs followed to their end (the server ends them when the snapshot settles).
 * The SDK's `snapshot.create` does the same but looks at the state once a second, which would count up to a second
 * of its polling.
 */
async function coveSnapshot(cove: TestCove, key: string, name: string, image: Image): Promise<number> {
  const daytona = cove.daytona(key) as unknown as { snapshot: { constructor: unknown }; objectStorageApi: unknown };
  const uploader = daytona.snapshot.constructor as { processImageContext(api: unknown, image: Image): Promise<string[]> };
  const t = process.hrtime.bigint();
  const contextHashes = await uploader.processImageContext(daytona.objectStorageApi, image);
  const res = await cove.api('/snapshots', { method: 'POST', key, body: JSON.stringify({ name, buildInfo: { dockerfileContent: image.dockerfile, contextHashes } }) });
  const created = (await res.json()) as { id: string; state: string };
  if (!res.ok) throw new Error(`snapshot ${name}: ${res.status} ${JSON.stringify(created)}`);
  if (created.state !== 'active') await (await cove.api(`/snapshots/${created.id}/build-logs?follow=true`, { key })).text();
  const ms = since(t);
  const settled = (await (await cove.api(`/snapshots/${created.id}`, { key })).json()) as { state: string; errorReason: string | null };
  if (settled.state !== 'active') throw new Error(`snapshot ${name} ended ${settled.state}: ${settled.errorReason}`);
  return ms;
}

/** Times `docker build` of a Dockerfile (with a context folder or none). */
async function dockerBuild(dockerfile: string, tag: string, contextDir?: string): Promise<number> {
  const dir = contextDir ?? mkdtempSync(path.join(os.tmpdir(), 'cove-bench-ctx-'));
  writeFileSync(path.join(dir, 'Dockerfile.bench'), dockerfile);
  const t = process.hrtime.bigint();
  await docker('build', '-q', '-f', path.join(dir, 'Dockerfile.bench'), '-t', tag, dir);
  const ms = since(t);
  if (!contextDir) rmSync(dir, { recursive: true, force: true });
  return ms;
}

const p50 = (xs: number[]) => percentile(xs, 0.5);

/** Waits until the warm pool of that snapshot holds `n` ready members (`GET /api/pool`). */
async function snapshotPoolReady(cove: TestCove, snapshot: string, n: number): Promise<void> {
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    const { pools } = (await (await cove.api('/pool')).json()) as { pools: { snapshot?: string; ready: number }[] };
    const ready = pools.find((p) => p.snapshot?.startsWith(snapshot))?.ready ?? 0;
    if (ready >= n) return;
    if (Date.now() > deadline) throw new Error(`the pool of ${snapshot} reached ${ready}/${n} in time`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const suffix = randomBytes(3).toString('hex');
  const poolName = `bench-pool-${suffix}`;
  let cove = await startCove({ pool: 0 });
  const keyA = cove.newKey('bench-a').key;
  const keyB = cove.newKey('bench-b').key;
  const tags: string[] = [];
  const ctxDir = mkdtempSync(path.join(os.tmpdir(), 'cove-bench-dir-'));
  try {
    // Builds: Cove and docker in turns, each with a fresh token (the first build) and then again (the cached one).
    const first: number[] = [];
    const sameKey: number[] = [];
    const otherKey: number[] = [];
    const dockerFirst: number[] = [];
    const dockerCached: number[] = [];
    for (let i = 0; i < BUILD_RUNS; i++) {
      const token = `${suffix}-${i}`;
      first.push(await coveSnapshot(cove, keyA, `b-${token}`, imageOf(token)));
      sameKey.push(await coveSnapshot(cove, keyA, `b2-${token}`, imageOf(token)));
      otherKey.push(await coveSnapshot(cove, keyB, `b3-${token}`, imageOf(token)));
      const dockerToken = `${suffix}-docker-${i}`;
      const dockerfile = imageOf(dockerToken).dockerfile;
      tags.push(`cove-bench-build:${dockerToken}`);
      dockerFirst.push(await dockerBuild(dockerfile, tags.at(-1)!));
      tags.push(`cove-bench-build:${dockerToken}-again`);
      dockerCached.push(await dockerBuild(dockerfile, tags.at(-1)!));
    }

    // Local files: 50 files of 100 KiB.
    mkdirSync(path.join(ctxDir, 'app'));
    const ctxFirst: number[] = [];
    const ctxDocker: number[] = [];
    for (let i = 0; i < BUILD_RUNS; i++) {
      for (let f = 0; f < 50; f++) writeFileSync(path.join(ctxDir, 'app', `f${f}.bin`), randomBytes(100 * 1024));
      const image = Image.base(SANDBOX_IMAGE).addLocalDir(path.join(ctxDir, 'app'), '/opt/app').runCommands('du -s /opt/app > /tmp/du');
      ctxFirst.push(await coveSnapshot(cove, keyA, `ctx-${suffix}-${i}`, image));
      for (let f = 0; f < 50; f++) writeFileSync(path.join(ctxDir, 'app', `f${f}.bin`), randomBytes(100 * 1024));
      tags.push(`cove-bench-build:ctx-${suffix}-${i}`);
      ctxDocker.push(await dockerBuild(`FROM ${SANDBOX_IMAGE}\nCOPY app /opt/app\nRUN du -s /opt/app > /tmp/du\n`, tags.at(-1)!, ctxDir));
    }

    // Create from a custom snapshot: a server with a warm pool of it, and one without (cold starts).
    await coveSnapshot(cove, cove.apiKey, poolName, imageOf(`${suffix}-pool`));
    const snapshotImage = (await cove.daytona(cove.apiKey).snapshot.get(poolName)).imageName;
    const create = async (c: TestCove) => {
      const t = process.hrtime.bigint();
      const res = await c.api('/sandbox', { method: 'POST', body: JSON.stringify({ snapshot: poolName }) });
      const body = (await res.json()) as { id: string; state: string };
      const ms = since(t);
      if (!res.ok || body.state !== 'started') throw new Error(`create: ${res.status} ${JSON.stringify(body)}`);
      await c.api(`/sandbox/${body.id}`, { method: 'DELETE' });
      return ms;
    };
    const cold: number[] = [];
    for (let i = 0; i < CREATE_RUNS; i++) cold.push(await create(cove));
    const dataDir = cove.dataDir;
    await cove.stop();
    cove = await startCove({ pool: 0, dataDir, apiKey: cove.apiKey, args: ['--pool', `${poolName}=${POOL}`] });
    const warm: number[] = [];
    const dockerRun: number[] = [];
    for (let i = 0; i < CREATE_RUNS; i++) {
      await snapshotPoolReady(cove, poolName, POOL);
      warm.push(await create(cove));
      const t = process.hrtime.bigint();
      const c = runAgentContainer({ image: snapshotImage });
      await agentAnswers(c.ip, c.token);
      dockerRun.push(since(t));
      await docker('rm', '-f', c.id);
    }

    const rows: Row[] = [
      { name: 'first build p50', value: p50(first), unit: 'ms', baseline: p50(dockerFirst), baselineName: 'docker build', compared: 'POST /api/snapshots of Image.base(…).runCommands(…).env(…).workdir(…) with a new RUN step, until its build logs end active vs `docker build` of the same Dockerfile (legacy builder, as Cove uses)' },
      { name: 'same image, same key p50', value: p50(sameKey), unit: 'ms', baseline: p50(dockerCached), baselineName: 'docker build (cached)', compared: 'the image exists: active at once vs `docker build` again (every step from the cache)' },
      { name: 'same image, another key p50', value: p50(otherKey), unit: 'ms', baseline: p50(dockerCached), baselineName: 'docker build (cached)', compared: "another key's image: every step from the engine's layer cache" },
      { name: 'with a 5 MiB folder p50', value: p50(ctxFirst), unit: 'ms', baseline: p50(ctxDocker), baselineName: 'docker build (folder in context)', compared: 'addLocalDir of 50 new files of 100 KiB: the SDK hashes, gets push access and uploads (its own code), then the same POST vs `docker build` with the folder in its context' },
      { name: 'create, warm pool p50', value: p50(warm), unit: 'ms', baseline: p50(dockerRun), baselineName: 'docker run + agent answers', compared: `POST /api/sandbox {snapshot} with --pool ${poolName}=${POOL} vs \`docker run -d\` of the snapshot's image until its agent answers` },
      { name: 'create, no pool p50', value: p50(cold), unit: 'ms', baseline: p50(dockerRun), baselineName: 'docker run + agent answers', compared: 'the same without a pool (a cold start)' },
    ];
    printTable(`Custom snapshots (${BUILD_RUNS} builds, ${CREATE_RUNS} creates each)`, rows);
  } finally {
    await cove.destroy();
    rmSync(ctxDir, { recursive: true, force: true });
    for (const tag of tags) await docker('rmi', tag).catch(() => {});
  }
}

await main();
