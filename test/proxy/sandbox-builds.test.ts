/**
 * Creates from a declarative image (SDK `create({ image: Image… })`) whose Dockerfile is not built yet, through a real
 * `cove serve`, real Docker and the published SDK: the create answers `pending_build` at once and the image is built in
 * the background (`building_snapshot`), its output the sandbox's build logs that the SDK follows
 * (`onSnapshotCreateLogs`), then the sandbox starts; a failing step ends `build_failed`; a delete during the build
 * leaves nothing behind; a restart during one ends it `build_failed`.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Image, type Daytona } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';

let cove: TestCove;
let alice: { key: string; id: string; daytona: Daytona };
let bob: { key: string; id: string; daytona: Daytona };
const suffix = randomBytes(4).toString('hex');
const base = 'cove-sandbox:latest';
const imageExists = (name: string) => spawnSync('docker', ['image', 'inspect', name], { stdio: 'ignore' }).status === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Dto {
  id: string;
  state: string;
  snapshot: string;
  errorReason?: string;
  recoverable: boolean;
}

const post = async (key: string, dockerfile: string) => {
  const res = await cove.api('/sandbox', { method: 'POST', key, body: JSON.stringify({ buildInfo: { dockerfileContent: dockerfile } }) });
  return { status: res.status, body: (await res.json()) as Dto };
};
const getDto = async (c: TestCove, key: string, id: string) => (await (await c.api(`/sandbox/${id}`, { key })).json()) as Dto;

/** Polls a sandbox until its state is not one of `passing` (at most two minutes). */
async function until(c: TestCove, key: string, id: string, passing: string[]): Promise<Dto> {
  let dto = await getDto(c, key, id);
  for (let i = 0; i < 1200 && passing.includes(dto.state); i++) {
    await sleep(100);
    dto = await getDto(c, key, id);
  }
  return dto;
}

beforeAll(async () => {
  cove = await startCove({ pool: 0 });
  alice = cove.newClient('alice');
  bob = cove.newClient('bob');
}, 900_000);

afterAll(async () => {
  await cove?.destroy();
});

describe('creates that build their image', () => {
  it('give the SDK the build logs as they come, then a started sandbox of the image; the same image again starts at once', async () => {
    const image = Image.base(base).runCommands(`echo x-${suffix} > /x`);
    const lines: string[] = [];
    const sandbox = await alice.daytona.create({ image }, { onSnapshotCreateLogs: (line) => lines.push(line), timeout: 300 });
    try {
      expect(sandbox.state).toBe('started');
      expect(sandbox.snapshot).toMatch(/^cove-build:/);
      const seen = lines.join('\n');
      expect(seen).toContain(`echo x-${suffix} > /x`);
      expect(seen).toContain('Sandbox started');
      expect((await sandbox.process.executeCommand('cat /x')).result).toBe(`x-${suffix}\n`);

      // The logs stay with the sandbox; another key sees neither them nor their URL.
      const url = (await (await cove.api(`/sandbox/${sandbox.id}/build-logs-url`, { key: alice.key })).json()) as { url: string };
      expect(url.url).toBe(`${cove.apiUrl}/sandbox/${sandbox.id}/build-logs`);
      const logs = await cove.api(`/sandbox/${sandbox.id}/build-logs?follow=true`, { key: alice.key });
      expect(logs.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await logs.text()).toContain(`echo x-${suffix} > /x`);
      for (const route of ['build-logs', 'build-logs-url']) expect((await cove.api(`/sandbox/${sandbox.id}/${route}`, { key: bob.key })).status).toBe(404);

      // The same Dockerfile again: the image is there, the create answers started.
      const again = await post(alice.key, image.dockerfile);
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ state: 'started', snapshot: sandbox.snapshot });
      expect(await (await cove.api(`/sandbox/${again.body.id}/build-logs`, { key: alice.key })).text()).toMatch(/is on this host: nothing to build/);
      await (await alice.daytona.get(again.body.id)).delete();
    } finally {
      await sandbox.delete();
    }
    // A sandbox of no Dockerfile has no build logs.
    const plain = await alice.daytona.create();
    try {
      const res = await cove.api(`/sandbox/${plain.id}/build-logs`, { key: alice.key });
      expect(res.status).toBe(400);
      expect((await res.json()).message).toMatch(/not created from a Dockerfile/);
    } finally {
      await plain.delete();
    }
  }, 600_000);

  it('without onSnapshotCreateLogs the SDK waits for the sandbox to start', async () => {
    const sandbox = await alice.daytona.create({ image: Image.base(base).runCommands(`echo y-${suffix} > /y`) }, { timeout: 300 });
    try {
      expect((await sandbox.process.executeCommand('cat /y')).result).toBe(`y-${suffix}\n`);
    } finally {
      await sandbox.delete();
    }
  }, 600_000);

  it('a failing step ends the sandbox build_failed with its message: the create rejects, start is refused, delete works', async () => {
    for (const follow of [false, true]) {
      const name = `fails-${follow}-${suffix}`;
      const lines: string[] = [];
      await expect(alice.daytona.create({ name, image: Image.base(base).runCommands(`echo ${name} && exit 7`) }, { timeout: 300, ...(follow ? { onSnapshotCreateLogs: (l: string) => lines.push(l) } : {}) })).rejects.toThrow(
        // The SDK learns the state from an event, which it reads no errorReason of: the sandbox has it (below).
        /failed to start with status: build_failed/,
      );
      if (follow) expect(lines.join('\n')).toMatch(/non-zero code: 7/);
      const failed = await alice.daytona.get(name);
      expect(failed).toMatchObject({ state: 'build_failed', errorReason: expect.stringMatching(/non-zero code: 7/), recoverable: false });
      await expect(failed.start()).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/build_failed/) });
      expect(await (await cove.api(`/sandbox/${failed.id}/build-logs`, { key: alice.key })).text()).toContain(`echo ${name}`);
      await failed.delete();
      await expect(alice.daytona.get(name)).rejects.toMatchObject({ statusCode: 404 });
    }
  }, 600_000);

  it('the create answers pending_build at once; deleted during its build, nothing is started and the image goes', async () => {
    const { status, body } = await post(alice.key, Image.base(base).runCommands(`sleep 3 && echo z-${suffix} > /z`).dockerfile);
    expect(status).toBe(200);
    expect(body.state).toBe('pending_build');
    const image = body.snapshot;
    expect(image).toMatch(/^cove-build:/);
    // Start and stop wait for the build.
    for (const op of ['start', 'stop']) {
      const res = await cove.api(`/sandbox/${body.id}/${op}`, { method: 'POST', key: alice.key });
      expect(res.status, op).toBe(409);
      expect((await res.json()).message).toMatch(/its image is being built/);
    }
    // The build has begun once the server recorded its image.
    const db = new Database(path.join(cove.dataDir, 'cove.db'), { readonly: true });
    const recorded = () => !!db.prepare('SELECT 1 FROM built_images WHERE image = ?').get(image);
    try {
      for (let i = 0; i < 600 && !recorded(); i++) await sleep(100);
      expect(recorded()).toBe(true);
      expect((await getDto(cove, alice.key, body.id)).state).toBe('building_snapshot');
      const deleted = await cove.api(`/sandbox/${body.id}`, { method: 'DELETE', key: alice.key });
      expect(deleted.status).toBe(200);
      expect((await getDto(cove, alice.key, body.id)).state).toBe('destroyed');
      // The build ends, its outcome discarded: the image it made is collected (its record goes with it).
      for (let i = 0; i < 1200 && recorded(); i++) await sleep(100);
      expect(recorded()).toBe(false);
    } finally {
      db.close();
    }
    expect(imageExists(image)).toBe(false);
    expect(cove.containers()).toEqual([]);
  }, 600_000);
});

describe('a restart during a build', () => {
  it('ends the sandbox build_failed', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'cove-data-'));
    const apiKey = `test-${randomBytes(24).toString('hex')}`;
    let server = await startCove({ pool: 0, dataDir, apiKey });
    try {
      const res = await server.api('/sandbox', { method: 'POST', body: JSON.stringify({ buildInfo: { dockerfileContent: Image.base(base).runCommands(`sleep 30 && echo r-${suffix}`).dockerfile } }) });
      const { id } = (await res.json()) as Dto;
      expect((await until(server, apiKey, id, ['pending_build'])).state).toBe('building_snapshot');
      await server.stop();
      server = await startCove({ pool: 0, dataDir, apiKey });
      const after = await getDto(server, apiKey, id);
      expect(after).toMatchObject({ state: 'build_failed', errorReason: 'Cove restarted while the image was being built' });
      expect((await server.api(`/sandbox/${id}/build-logs`)).status).toBe(200);
      expect((await server.api(`/sandbox/${id}`, { method: 'DELETE' })).status).toBe(200);
    } finally {
      await server.destroy();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 600_000);
});
