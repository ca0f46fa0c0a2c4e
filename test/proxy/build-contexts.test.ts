/**
 * Declarative images with local files (SDK `Image.addLocalFile/addLocalDir`) through a real `cove serve`, real Docker
 * and the published SDK: the SDK asks `/api/object-storage/push-access` for credentials and uploads each context with
 * its own AWS S3 client (a multipart upload for a large one); the build sees the files. Also what the S3 endpoint
 * refuses (another key's objects, bad signatures, operations uploads do not use), contexts a key never uploaded, a
 * context that is not a tar archive, and what a build's steps can reach.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Image, type Daytona } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCove, type TestCove } from '../helpers/cove';

let cove: TestCove;
let alice: { key: string; id: string; daytona: Daytona };
let bob: { key: string; id: string; daytona: Daytona };
const suffix = randomBytes(4).toString('hex');
const base = 'cove-sandbox:latest';
let dir: string;
/** A file large enough for the SDK to upload its context in several parts (5 MiB each). */
let big: Buffer;

interface PushAccess {
  accessKey: string;
  secret: string;
  sessionToken: string;
  storageUrl: string;
  organizationId: string;
  bucket: string;
  region: string;
}

beforeAll(async () => {
  cove = await startCove({ pool: 0 });
  alice = cove.newClient('alice');
  bob = cove.newClient('bob');
  dir = mkdtempSync(path.join(os.tmpdir(), 'cove-ctx-'));
  mkdirSync(path.join(dir, 'app', 'sub'), { recursive: true });
  writeFileSync(path.join(dir, 'app', 'hello.txt'), `hello ${suffix}\n`);
  writeFileSync(path.join(dir, 'app', 'sub', 'deep.txt'), 'deep\n');
  big = randomBytes(12 * 1024 * 1024);
  writeFileSync(path.join(dir, 'app', 'big.bin'), big);
  writeFileSync(path.join(dir, 'single.txt'), `single ${suffix}\n`);
}, 20 * 60_000);
afterAll(async () => {
  await cove?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

async function pushAccess(key: string): Promise<PushAccess> {
  const res = await cove.api('/object-storage/push-access', { key });
  expect(res.status).toBe(200);
  return (await res.json()) as PushAccess;
}

const s3Of = (access: PushAccess, override: Partial<PushAccess> = {}) => {
  const a = { ...access, ...override };
  return new S3Client({
    endpoint: a.storageUrl,
    region: a.region,
    forcePathStyle: true,
    credentials: { accessKeyId: a.accessKey, secretAccessKey: a.secret, sessionToken: a.sessionToken },
  });
};

describe('local files in declarative images', () => {
  it('uploads contexts with the SDK (multipart for a large one) and builds them into a snapshot and a create; the same again is a cache hit', async () => {
    const image = Image.base(base)
      .addLocalDir(path.join(dir, 'app'), '/opt/app')
      .addLocalFile(path.join(dir, 'single.txt'), '/opt/single.txt')
      .runCommands('cat /opt/app/hello.txt /opt/app/sub/deep.txt > /opt/combined.txt', 'sha256sum /opt/app/big.bin | cut -c1-64 > /opt/big.sha');
    const logs: string[] = [];
    const snapshot = await alice.daytona.snapshot.create({ name: `ctx-${suffix}`, image }, { onLogs: (line) => logs.push(line) });
    expect(snapshot.state).toBe('active');
    expect(logs.join('\n')).toMatch(/COPY .*\/opt\/app/);

    // Uploaded as `{organizationId}/{hash}/context.tar`, one per local path, visible to the key that uploaded them.
    const access = await pushAccess(alice.key);
    expect(access.organizationId).toBe(alice.id);
    const listed = await s3Of(access).send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: `${alice.id}/` }));
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    expect(keys).toHaveLength(2);
    for (const key of keys) expect(key).toMatch(new RegExp(`^${alice.id}/[0-9a-f]{32}/context\\.tar$`));
    expect(Math.max(...(listed.Contents ?? []).map((o) => o.Size ?? 0))).toBeGreaterThan(big.length);

    const sandbox = await alice.daytona.create({ snapshot: `ctx-${suffix}` });
    try {
      const run = async (cmd: string) => (await sandbox.process.executeCommand(cmd)).result;
      expect(await run('cat /opt/combined.txt')).toBe(`hello ${suffix}\ndeep\n`);
      expect(await run('cat /opt/single.txt')).toBe(`single ${suffix}\n`);
      expect((await run('cat /opt/big.sha')).trim()).toBe(createHash('sha256').update(big).digest('hex'));
    } finally {
      await sandbox.delete();
    }

    // The same image again: the SDK finds its contexts uploaded, and the image is built already.
    const again = await alice.daytona.snapshot.create({ name: `ctx-again-${suffix}`, image });
    expect(again.state).toBe('active');
    expect(again.imageName).toBe(snapshot.imageName);

    // A changed file is another context, so another image.
    writeFileSync(path.join(dir, 'app', 'hello.txt'), `changed ${suffix}\n`);
    const direct = await alice.daytona.create({ image: Image.base(base).addLocalDir(path.join(dir, 'app'), '/opt/app') });
    try {
      expect((await direct.process.executeCommand('cat /opt/app/hello.txt')).result).toBe(`changed ${suffix}\n`);
      expect(direct.snapshot).not.toBe(snapshot.imageName);
    } finally {
      await direct.delete();
    }
    await alice.daytona.snapshot.delete(`ctx-again-${suffix}`);
    await alice.daytona.snapshot.delete(`ctx-${suffix}`);
  }, 600_000);

  it('refuses contexts that were not uploaded by this key, and ends build_failed on one that is not a tar archive', async () => {
    const access = await pushAccess(alice.key);
    const listed = await s3Of(access).send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: `${alice.id}/` }));
    const aliceHash = listed.Contents![0].Key!.split('/')[1];
    const dockerfile = `FROM ${base}\nCOPY x /x\n`;
    for (const [hashes, reason] of [
      [[aliceHash], /no build context .* was uploaded with this API key/],
      [['../../etc'], /is not a context hash/],
    ] as const) {
      const res = await cove.api('/snapshots', { method: 'POST', key: bob.key, body: JSON.stringify({ name: `theirs-${suffix}`, buildInfo: { dockerfileContent: dockerfile, contextHashes: hashes } }) });
      expect(res.status).toBe(400);
      expect((await res.json()).message).toMatch(reason);
      const create = await cove.api('/sandbox', { method: 'POST', key: bob.key, body: JSON.stringify({ buildInfo: { dockerfileContent: dockerfile, contextHashes: hashes } }) });
      expect(create.status).toBe(400);
      expect((await create.json()).message).toMatch(reason);
    }

    // Bytes that are not a tar archive, put where a context goes: the build fails saying so.
    const garbage = randomBytes(16).toString('hex');
    await s3Of(access).send(new PutObjectCommand({ Bucket: access.bucket, Key: `${alice.id}/${garbage}/context.tar`, Body: Buffer.alloc(4096, 'x') }));
    const res = await cove.api('/snapshots', { method: 'POST', key: alice.key, body: JSON.stringify({ name: `garbage-${suffix}`, buildInfo: { dockerfileContent: dockerfile, contextHashes: [garbage] } }) });
    expect(res.status).toBe(200);
    let state = '';
    let reason = '';
    for (let i = 0; i < 300 && !['active', 'build_failed'].includes(state); i++) {
      const got = (await (await cove.api(`/snapshots/garbage-${suffix}`, { key: alice.key })).json()) as { state: string; errorReason: string };
      ({ state, errorReason: reason } = got);
      if (state === 'building') await new Promise((r) => setTimeout(r, 100));
    }
    expect(state).toBe('build_failed');
    expect(reason).toMatch(/not a tar archive/);
    await alice.daytona.snapshot.delete(`garbage-${suffix}`);
    await s3Of(access).send(new DeleteObjectCommand({ Bucket: access.bucket, Key: `${alice.id}/${garbage}/context.tar` }));
  }, 300_000);
});

describe('the S3 endpoint', () => {
  it("serves a key's own contexts only, to requests signed with its current credentials", async () => {
    const access = await pushAccess(bob.key);
    const s3 = s3Of(access);
    const hash = randomBytes(16).toString('hex');
    // Its own context: put, list.
    await s3.send(new PutObjectCommand({ Bucket: access.bucket, Key: `${bob.id}/${hash}/context.tar`, Body: 'x' }));
    expect((await s3.send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: `${bob.id}/${hash}/` }))).KeyCount).toBe(1);

    const denied = async (promise: Promise<unknown>, code: string) => {
      const err = (await promise.then(
        () => undefined,
        (e: unknown) => e,
      )) as { name?: string; Code?: string } | undefined;
      expect(err, code).toBeDefined();
      expect(err!.name ?? err!.Code).toBe(code);
    };
    // Another key's prefix, another shape of key, another bucket, bucket operations.
    await denied(s3.send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: `${alice.id}/` })), 'AccessDenied');
    await denied(s3.send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: '' })), 'AccessDenied');
    await denied(s3.send(new PutObjectCommand({ Bucket: access.bucket, Key: `${alice.id}/${hash}/context.tar`, Body: 'x' })), 'AccessDenied');
    await denied(s3.send(new PutObjectCommand({ Bucket: access.bucket, Key: `${bob.id}/../../x`, Body: 'x' })), 'AccessDenied');
    await denied(s3.send(new PutObjectCommand({ Bucket: 'other', Key: `${bob.id}/${hash}/context.tar`, Body: 'x' })), 'AccessDenied');
    await denied(s3.send(new CreateBucketCommand({ Bucket: 'mine' })), 'AccessDenied');
    await denied(s3.send(new ListBucketsCommand({})), 'AccessDenied');
    // Multipart uploads: ids the server did not issue, or issued for another object, go nowhere.
    const started = await s3.send(new CreateMultipartUploadCommand({ Bucket: access.bucket, Key: `${bob.id}/${hash}/context.tar` }));
    const otherHash = randomBytes(16).toString('hex');
    for (const [key, uploadId] of [
      [`${bob.id}/${hash}/context.tar`, '../../../../../tmp/cove-escape'],
      [`${bob.id}/${hash}/context.tar`, 'f'.repeat(32)],
      [`${bob.id}/${otherHash}/context.tar`, started.UploadId!],
    ]) {
      await denied(s3.send(new UploadPartCommand({ Bucket: access.bucket, Key: key, UploadId: uploadId, PartNumber: 1, Body: 'x' })), 'AccessDenied');
      await denied(s3.send(new CompleteMultipartUploadCommand({ Bucket: access.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: 'x' }] } })), 'AccessDenied');
    }
    await s3.send(new AbortMultipartUploadCommand({ Bucket: access.bucket, Key: `${bob.id}/${hash}/context.tar`, UploadId: started.UploadId! }));
    // Aborted: its id is gone.
    await denied(s3.send(new UploadPartCommand({ Bucket: access.bucket, Key: `${bob.id}/${hash}/context.tar`, UploadId: started.UploadId!, PartNumber: 1, Body: 'x' })), 'AccessDenied');
    // Wrong secret, wrong session token, unknown key id.
    await denied(s3Of(access, { secret: 'nope' }).send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: `${bob.id}/` })), 'SignatureDoesNotMatch');
    await denied(s3Of(access, { sessionToken: 'nope' }).send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: `${bob.id}/` })), 'InvalidToken');
    await denied(s3Of(access, { accessKey: 'COVEUNKNOWN' }).send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: `${bob.id}/` })), 'InvalidAccessKeyId');
    // No signature at all.
    const anonymous = await fetch(`${access.storageUrl}/${access.bucket}/${bob.id}/${hash}/context.tar`);
    expect(anonymous.status).toBe(403);
    expect(await anonymous.text()).toMatch(/<Code>AccessDenied<\/Code>/);
    // The credentials endpoint is behind the API key like every route.
    expect((await cove.api('/object-storage/push-access', { key: null })).status).toBe(401);
    // Deleting its own objects works.
    await s3.send(new DeleteObjectCommand({ Bucket: access.bucket, Key: `${bob.id}/${hash}/context.tar` }));
    expect((await s3.send(new ListObjectsV2Command({ Bucket: access.bucket, Prefix: `${bob.id}/${hash}/` }))).KeyCount).toBe(0);
  }, 120_000);
});

describe("build steps and the sandboxes' network", () => {
  it('have a network, under the firewall of sandboxes: the host is out of reach', async () => {
    // A listener on every host address: the host reaches it, a build step must not.
    const server = net.createServer((socket) => {
      hits++;
      socket.destroy();
    });
    let hits = 0;
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const gateway = execFileSync('docker', ['network', 'inspect', 'cove', '-f', '{{(index .IPAM.Config 0).Gateway}}'], { encoding: 'utf8' }).trim();
      expect(spawnSync('bash', ['-c', `exec 3<>/dev/tcp/${gateway}/${port}`]).status).toBe(0);
      // Its accept is seen once this process's event loop runs.
      for (let i = 0; i < 100 && hits === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(hits).toBe(1);
      const step = `test -e /sys/class/net/eth0 || exit 6; timeout 5 bash -c "exec 3<>/dev/tcp/${gateway}/${port}" && exit 0 || exit 7`;
      await expect(alice.daytona.snapshot.create({ name: `net-${suffix}`, image: Image.base(base).runCommands(step) })).rejects.toThrow();
      const failed = await alice.daytona.snapshot.get(`net-${suffix}`);
      expect(failed.state).toBe('build_failed');
      expect(failed.errorReason).toMatch(/returned a non-zero code: 7/);
      expect(hits).toBe(1);
      await alice.daytona.snapshot.delete(`net-${suffix}`);
    } finally {
      server.close();
    }
  }, 300_000);
});
