import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySigV4, type SignedRequest } from './sigv4';

const creds = { accessKeyId: 'COVETESTKEY', secretAccessKey: 'secret/with+chars', sessionToken: 'token-1' };
const lookup = (id: string) => (id === creds.accessKeyId ? { secret: creds.secretAccessKey, sessionToken: creds.sessionToken } : undefined);

/** Requests as the AWS SDK's S3 client sends them over the wire, captured by a plain HTTP server. */
let seen: SignedRequest[] = [];
let client: S3Client;
const server = createServer((req, res) => {
  seen.push({ method: req.method!, url: req.url!, headers: req.headers });
  res.writeHead(500).end();
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  client = new S3Client({
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/object-storage`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: creds,
    maxAttempts: 1,
  });
});
afterAll(() => server.close());

async function captured(command: { constructor: unknown }): Promise<SignedRequest> {
  seen = [];
  await client.send(command as never).catch(() => {});
  expect(seen).toHaveLength(1);
  return seen[0];
}

describe('verifySigV4', () => {
  it("accepts what the AWS SDK signs: odd keys, queries with empty values and encoded characters, bodies' hashes", async () => {
    for (const command of [
      new ListObjectsV2Command({ Bucket: 'b', Prefix: 'org/a b+c/', MaxKeys: 1 }),
      new PutObjectCommand({ Bucket: 'b', Key: "org/x/dir with spaces/ü*'()!.tar", Body: 'hello' }),
      new UploadPartCommand({ Bucket: 'b', Key: 'org/x/context.tar', UploadId: 'u/1+2=', PartNumber: 3, Body: Buffer.alloc(100) }),
      new GetObjectCommand({ Bucket: 'b', Key: 'org/x/context.tar' }),
    ]) {
      const req = await captured(command);
      expect(verifySigV4(req, lookup)).toBe(creds.accessKeyId);
    }
  });

  it('refuses a changed request, another secret or token, an old date, an unknown key', async () => {
    const req = await captured(new PutObjectCommand({ Bucket: 'b', Key: 'org/x/context.tar', Body: 'hello' }));
    const code = (r: SignedRequest, l = lookup, now?: number) => {
      try {
        verifySigV4(r, l, now);
        return 'accepted';
      } catch (err) {
        return (err as { code: string }).code;
      }
    };
    expect(code(req)).toBe('accepted');
    expect(code({ ...req, url: req.url.replace('org/x', 'org/y') })).toBe('SignatureDoesNotMatch');
    expect(code({ ...req, method: 'DELETE' })).toBe('SignatureDoesNotMatch');
    expect(code({ ...req, url: `${req.url}&uploads=` })).toBe('SignatureDoesNotMatch');
    expect(code({ ...req, headers: { ...req.headers, 'x-amz-content-sha256': '0'.repeat(64) } })).toBe('SignatureDoesNotMatch');
    expect(code({ ...req, headers: { ...req.headers, host: 'elsewhere' } })).toBe('SignatureDoesNotMatch');
    expect(code(req, () => ({ secret: 'other', sessionToken: creds.sessionToken }))).toBe('SignatureDoesNotMatch');
    expect(code(req, () => ({ secret: creds.secretAccessKey, sessionToken: 'token-2' }))).toBe('InvalidToken');
    expect(code(req, () => undefined)).toBe('InvalidAccessKeyId');
    expect(code(req, lookup, Date.now() + 16 * 60_000)).toBe('RequestTimeTooSkewed');
    expect(code({ ...req, headers: { ...req.headers, authorization: undefined } })).toBe('AccessDenied');
    expect(code({ ...req, headers: { ...req.headers, authorization: 'AWS COVETESTKEY:abc' } })).toBe('AccessDenied');
    expect(code({ ...req, url: '/object-storage/b/%E0%A4%A?x=%ZZ' })).toBe('SignatureDoesNotMatch');
  });
});
