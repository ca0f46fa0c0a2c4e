/**
 * Fuzzing the proxy's front door (`cove serve` with real sandboxes): every route of the control API, raw HTTP/1.1 byte
 * streams into its port, preview requests carrying Cove credentials every way, and hostile responses from an app in
 * a sandbox. Invariants: the server never exits and logs no error that escaped a boundary; every answer is well-formed
 * HTTP; client errors are 4xx; nothing a sandbox app receives contains a Cove credential; memory stays bounded.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FramingError, Http1Framer, responseFraming, scanResponseHead, statusOf } from '../../lib/net/http1';
import { startCove, type TestCove } from '../helpers/cove';
import { PREVIEW_FIXTURES, toolbox } from '../helpers/preview';
import { fc, fuzz, timeoutFor } from './lib';

let cove: TestCove;
let port: number;
/** A public sandbox (its raw app on 9090) and a private one (echo app on 8080). */
let pub: string;
let priv: string;
let token: string;
let routes: Array<{ method: string; path: string; query: string[] }>;

async function createSandbox(body: object): Promise<string> {
  const res = await cove.api('/sandbox', { method: 'POST', body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`create failed: ${JSON.stringify(json)}`);
  return json.id;
}

/** Writes `pieces` to the proxy (with a pause between them) and reads until it closes or `ms` pass. */
function exchange(pieces: Buffer[], ms = 2_000, gapMs = 0): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.once('connect', async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

/** The responses in what the proxy sent: each must be well-formed (strictly framed) and complete, or the stream must stop cleanly. */
function responsesOf(data: Buffer, method = 'GET'): Array<{ status: number; body: Buffer }> {
  const framer = new Http1Framer(scanResponseHead);
  framer.feed(data);
  const out: Array<{ status: number; body: Buffer }> = [];
  let current: { status: number; body: Buffer[] } | undefined;
  for (;;) {
    const item = framer.next();
    if (!item) break;
    if (item.kind === 'head') {
      if (current) out.push({ status: current.status, body: Buffer.concat(current.body) });
      const status = statusOf(item.head);
      current = { status, body: [] };
      framer.body(responseFraming(item.head, method));
    } else current?.body.push(item.data);
  }
  if (current) out.push({ status: current.status, body: Buffer.concat(current.body) });
  return out;
}

/** The server is alive, answers its API, and no error escaped a boundary. */
async function expectServing(): Promise<void> {
  expect(cove.process.exitCode, cove.output().slice(-2000)).toBeNull();
  expect(cove.output()).not.toMatch(/\((uncaught|unhandled rejection)\)/);
  const res = await cove.api(`/sandbox/${pub}`);
  expect(res.status).toBe(200);
}

function rssMiB(): number {
  const status = execFileSync('cat', [`/proc/${cove.process.pid}/status`], { encoding: 'utf8' });
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

beforeAll(async () => {
  cove = await startCove({ pool: 1 });
  port = Number(new URL(cove.url).port);
  [pub, priv] = await Promise.all([createSandbox({ public: true }), createSandbox({})]);
  for (const [id, command, p] of [
    [pub, 'node /home/cove/preview/raw-server.mjs 9090', 9090],
    [priv, 'node /home/cove/preview/echo-server.mjs 8080 0.0.0.0', 8080],
  ] as const) {
    const box = toolbox(cove, id);
    await box.uploadDir(PREVIEW_FIXTURES, '/home/cove/preview');
    await box.serve(command, p);
  }
  token = (await (await cove.api(`/sandbox/${priv}/ports/8080/preview-url`)).json()).token;
  const doc = await (await cove.api('/openapi.json')).json();
  routes = [];
  for (const [path, ops] of Object.entries<Record<string, { parameters?: Array<{ name: string; in: string }> }>>(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      routes.push({ method: method.toUpperCase(), path, query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name) });
    }
  }
}, 20 * 60_000);

afterAll(async () => {
  if (!cove) return;
  await cove.destroy();
});

/** Strings a hostile client would try in a path segment, query value or header. */
const hostileText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('%ZZ', '%', '%C0%AF', '..', '../..', '%2e%2e%2f', '\u0000', '%00', 'ü', '😀', ' ', '%20', '-1', '0', '1e309', 'NaN', 'null', '[]', '{}', 'true'),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.integer().map(String),
  fc.constant('x'.repeat(5000)),
);
/** Percent-encodes what a path segment cannot hold as it is (bytes of the UTF-8 form, lone surrogates included); `%` stays, so bad escapes get through. */
const encodePathSegment = (s: string) => s.replace(/[^A-Za-z0-9%._~!$&'()*+,;=:@-]/gu, (c) => Buffer.from(c).toString('hex').replace(/../g, '%$&'));

const jsonValue = fc.jsonValue({ maxDepth: 4 });
const createBody = fc.oneof(
  // Known fields of the wrong type or out of range: always invalid.
  fc.record({
    cpu: fc.oneof(fc.constant(-1), fc.constant(0), fc.constant(1e9), fc.constant('2'), fc.constant(1.5)),
    memory: fc.oneof(fc.constant(-4), fc.constant('a'), fc.constant(1e12)),
  }),
  fc.record({ image: fc.oneof(fc.integer(), fc.constant(''), fc.constant('no such image:ever'), fc.constant('a'.repeat(300))) }),
  fc.record({ env: fc.oneof(fc.array(fc.string()), fc.constant("x"), fc.dictionary(fc.string(), fc.integer(), { minKeys: 1 })) }),
  fc.record({ labels: fc.oneof(fc.array(fc.string()), fc.constant(5)) }),
  fc.record({ user: fc.oneof(fc.constant('root;rm -rf /'), fc.constant(''), fc.integer()) }),
  fc.record({ name: fc.oneof(fc.integer(), fc.constant('a'.repeat(1000)), fc.constant('bad/name')), image: fc.constant(0) }),
);

describe('control API', () => {
  it(
    'answers every route well-formed, with 4xx for bad input, and keeps serving',
    async () => {
      const created: string[] = [];
      await fuzz(
        'control API routes',
        fc.asyncProperty(
          fc.nat(),
          fc.array(hostileText, { minLength: 4, maxLength: 4 }),
          fc.dictionary(fc.constantFrom('cursor', 'limit', 'id', 'name', 'labels', 'states', 'force', 'expiresInSeconds', 'expiresInMinutes', 'token', 'x'), hostileText, { maxKeys: 4 }),
          fc.oneof(createBody.map((b) => JSON.stringify(b)), jsonValue.map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }), fc.constant('{"a":'), fc.constant('')),
          fc.constantFrom('admin', 'none', 'garbage'),
          fc.constantFrom('application/json', 'text/plain', 'multipart/form-data', ''),
          async (which, params, query, body, auth, contentType) => {
            const route = routes[which % routes.length];
            let i = 0;
            // Destructive routes never get the id of a sandbox the fuzzer relies on: generated names only.
            const path = route.path.replace(/\{[^}]+\}/g, () => encodePathSegment(params[i++ % params.length]) || '%20');
            const qs = new URLSearchParams(query).toString();
            const headers: Record<string, string> = {};
            if (auth === 'admin') headers.Authorization = `Bearer ${cove.apiKey}`;
            if (auth === 'garbage') headers.Authorization = 'Bearer cove_not_a_key';
            if (contentType) headers['Content-Type'] = contentType;
            const url = `${cove.apiUrl}${path}${qs ? `?${qs}` : ''}`;
            let res: Response;
            try {
              res = await fetch(url, { method: route.method, headers, body: route.method === 'GET' ? undefined : body });
            } catch (err) {
              // A head near Node's 16 KiB limit is answered 431 and closed while fetch still sends the body: fetch
              // reports the close instead of the answer. Anything shorter must be answered.
              if (url.length > 12_000) return;
              throw err;
            }
            const text = await res.text();
            if (res.ok && route.method === 'POST' && route.path === '/sandbox') {
              created.push(JSON.parse(text).id);
              await cove.api(`/sandbox/${JSON.parse(text).id}`, { method: 'DELETE' });
            }
            if (res.status >= 400) {
              const envelope = JSON.parse(text);
              expect(typeof envelope.message, text).toBe('string');
              expect(typeof envelope.code, text).toBe('string');
            }
            expect(res.status, `${route.method} ${path}?${qs} ${body.slice(0, 200)} → ${text.slice(0, 300)}`).toBeLessThan(500);
          },
        ),
        12_000,
      );
      await expectServing();
      // A generated body that created a sandbox must have named something real to create (logged for review).
      if (created.length) process.stdout.write(`fuzz: ${created.length} generated create requests were valid and were deleted\n`);
    },
    timeoutFor(12_000, 20 * 60_000),
  );
});

/** Pieces of a raw request stream: request lines, hosts (API, preview), header lines, smuggling shapes, garbage. */
const previewHost = () => fc.constantFrom(`9090-${pub}.localhost`, `8080-${priv}.localhost`, `127.0.0.1:${port}`, `1-${pub}.localhost`, `2280-${priv}.localhost`, 'x.localhost');
const rawRequest = () =>
  fc
    .tuple(
      fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'CONNECT', 'DELETE', 'G\u0000T', 'GET ', ''),
      fc.oneof(
        fc.constantFrom('/', '/raw?b=', '/ok', '/api/sandbox', '/toolbox/%ZZ/x', `/toolbox/${pub}/files?path=%ZZ`, '/api/toolbox/%ZZ/toolbox/x', `/api/toolbox/${priv}/toolbox/files?path=%ZZ`, `/api/toolbox/${priv}?x`, '/api/toolbox/', 'http://[/', '//a:99999/', '*', '/%', '/a b', '/object-storage', '/object-storage/daytona-volume-builds/?list-type=2&prefix=%ZZ', '/object-storage/%ZZ/x', '/object-storage/daytona-volume-builds/a/b/context.tar?uploads='),
        hostileText.map((t) => `/${t}`),
      ),
      fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 ', 'http/1.1', ''),
      previewHost(),
      fc.array(
        fc.oneof(
          fc.constantFrom(
            'Content-Length: 5',
            'Content-Length: 0',
            'Content-Length: -1',
            'Content-Length: 5, 6',
            'Content-Length: 99999999999',
            'Transfer-Encoding: chunked',
            'Transfer-Encoding: gzip',
            'Transfer-Encoding: chunked, gzip',
            'Transfer-Encoding:  chunked',
            'Transfer-Encoding\t: chunked',
            ' folded',
            'Connection: Upgrade',
            'Upgrade: websocket',
            'Connection: close',
            'Expect: 100-continue',
            `Authorization: Bearer ${'cove_'.padEnd(40, 'x')}`,
            `X-Daytona-Preview-Token: ${'a'.repeat(32)}`,
            'Cookie: cove_preview=%ZZ',
            `Authorization: AWS4-HMAC-SHA256 Credential=COVEX/20261201/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`,
            'Authorization: AWS4-HMAC-SHA256 Credential=, Signature=%ZZ',
            'X-Amz-Date: 20261201T000000Z',
          ),
          fc.tuple(fc.string({ maxLength: 20 }), hostileText).map(([k, v]) => `${k}: ${v}`),
        ),
        { maxLength: 6 },
      ),
      fc.constantFrom('\r\n', '\n', '\r'),
      fc.oneof(fc.constant(''), fc.constant('hello'), fc.constant('5\r\nhello\r\n0\r\n\r\n'), fc.constant('zz\r\n'), fc.string({ maxLength: 100 })),
    )
    .map(([method, target, version, host, headers, eol, body]) => Buffer.from(`${method} ${target} ${version}${eol}Host: ${host}${eol}${headers.join(eol)}${headers.length ? eol : ''}${eol}${body}`, 'latin1'));

describe('the S3 endpoint of build contexts', () => {
  it(
    'answers signed S3 requests of any bucket, key, prefix and body with S3 answers, never a 5xx, and keeps serving',
    async () => {
      const access = (await (await cove.api('/object-storage/push-access')).json()) as Record<string, string>;
      const s3 = new S3Client({
        endpoint: access.storageUrl,
        region: access.region,
        forcePathStyle: true,
        maxAttempts: 1,
        credentials: { accessKeyId: access.accessKey, secretAccessKey: access.secret, sessionToken: access.sessionToken },
      });
      const own = `${access.organizationId}/${'a'.repeat(32)}/context.tar`;
      const name = fc.oneof(fc.constantFrom(access.bucket, 'other', '', '..'), hostileText);
      const key = fc.oneof(fc.constantFrom(own, `${access.organizationId}/`, `${access.organizationId}/../x`, '../../etc/passwd'), hostileText);
      await fuzz(
        'S3 requests',
        fc.asyncProperty(fc.constantFrom('put', 'list', 'get', 'delete', 'multipart'), name, key, fc.oneof(fc.string({ maxLength: 100 }), fc.constant('x'.repeat(70_000))), async (op, bucket, objectKey, body) => {
          const command =
            op === 'put'
              ? new PutObjectCommand({ Bucket: bucket, Key: objectKey, Body: body })
              : op === 'list'
                ? new ListObjectsV2Command({ Bucket: bucket, Prefix: objectKey })
                : op === 'get'
                  ? new GetObjectCommand({ Bucket: bucket, Key: objectKey })
                  : op === 'delete'
                    ? new DeleteObjectCommand({ Bucket: bucket, Key: objectKey })
                    : new CreateMultipartUploadCommand({ Bucket: bucket, Key: objectKey });
          try {
            await s3.send(command as never);
          } catch (err) {
            const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
            // The client refuses some names itself (no request); what reached the server is answered below 500.
            if (status !== undefined) expect(status, `${op} ${bucket} ${objectKey}: ${(err as Error).message}`).toBeLessThan(500);
          }
        }),
        8_000,
      );
      await expectServing();
    },
    timeoutFor(8_000, 20 * 60_000),
  );
});

describe('raw HTTP/1.1 streams', () => {
  it(
    'answers every byte stream with well-formed HTTP or a close, and keeps serving',
    async () => {
      await fuzz(
        'raw streams into the proxy',
        fc.asyncProperty(
          fc.array(fc.oneof({ weight: 4, arbitrary: rawRequest() }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) }), { minLength: 1, maxLength: 3 }),
          fc.array(fc.nat(), { maxLength: 4 }),
          fc.constantFrom(0, 0, 0, 5),
          async (messages, cuts, gapMs) => {
            const all = Buffer.concat(messages);
            // The same bytes in random pieces: framing must not depend on how TCP splits them.
            const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
            const pieces: Buffer[] = [];
            let from = 0;
            for (const p of points) {
              pieces.push(all.subarray(from, p));
              from = p;
            }
            pieces.push(all.subarray(from));
            const { data } = await exchange(pieces.filter((p) => p.length), 1_500, gapMs);
            if (!data.length) return;
            let responses;
            try {
              responses = responsesOf(data, 'GET');
            } catch (err) {
              // A HEAD's response has no body: the last one may be read as incomplete; anything else is malformed.
              if (!(err instanceof FramingError) || !all.includes('HEAD')) throw new Error(`malformed answer ${JSON.stringify(data.toString('latin1').slice(0, 400))}: ${err}`);
              return;
            }
            for (const r of responses) expect(r.status).toBeGreaterThanOrEqual(100);
          },
        ),
        12_000,
      );
      await expectServing();
    },
    timeoutFor(12_000, 20 * 60_000),
  );

  it('stays within memory under huge heads, huge bodies and slow heads', async () => {
    const before = rssMiB();
    const big = Buffer.alloc(70 * 1024, 0x61);
    await Promise.all([
      exchange([Buffer.from(`GET / HTTP/1.1\r\nHost: 9090-${pub}.localhost\r\nX: `), big, big], 3_000),
      exchange([Buffer.from(`POST /api/sandbox HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n`), ...Array(40).fill(Buffer.alloc(1 << 20))], 5_000),
      exchange([Buffer.from(`GET /never HTTP/1.1\r\nHost: 9090-${pub}.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`), ...Array(40).fill(Buffer.alloc(1 << 20))], 5_000),
      exchange(Array.from('GET / HTTP/1.1\r\nHost: x\r\n', (c) => Buffer.from(c)), 3_000, 50),
    ]);
    expect(rssMiB() - before).toBeLessThan(64);
    await expectServing();
  }, 60_000);
});

describe('preview traffic', () => {
  it(
    'never hands a Cove credential to the app, however it is sent',
    async () => {
      const secrets = [cove.apiKey, token];
      const place = fc.constantFrom('authorization', 'basic', 'query', 'query-encoded', 'header', 'cookie', 'cookie-host', 'proxy-authorization');
      await fuzz(
        'credentials toward a sandbox',
        fc.asyncProperty(fc.array(fc.tuple(place, fc.constantFrom(...secrets)), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.constantFrom('GET', 'POST', 'OPTIONS'), async (placed, preflight, method) => {
          const headers: Record<string, string> = { 'X-Daytona-Preview-Token': token };
          const params: string[] = ['a=1'];
          const cookies: string[] = ['app=1'];
          for (const [where, secret] of placed) {
            if (where === 'authorization') headers.Authorization = `Bearer ${secret}`;
            if (where === 'basic') headers.Authorization = `Basic ${Buffer.from(`u:${secret}`).toString('base64')}`;
            if (where === 'proxy-authorization') headers['Proxy-Authorization'] = `Bearer ${secret}`;
            if (where === 'query') params.push(`cove_preview_token=${secret}`);
            if (where === 'query-encoded') params.push(`${encodeURIComponent('DAYTONA_SANDBOX_AUTH_KEY').replace(/_/g, '%5F')}=${encodeURIComponent(secret)}`);
            if (where === 'header') headers['X-Cove-Preview-Token'] = secret;
            if (where === 'cookie') cookies.push(`cove_preview=${secret}`);
            if (where === 'cookie-host') cookies.push(`__Host-cove_preview=${secret}`);
          }
          headers.Cookie = cookies.join('; ');
          if (preflight) Object.assign(headers, { Origin: 'http://o.test', 'Access-Control-Request-Method': 'PUT' });
          const head = `${method} /echo?${params.join('&')} HTTP/1.1\r\nHost: 8080-${priv}.localhost\r\n${Object.entries(headers)
            .map(([k, v]) => `${k}: ${v}\r\n`)
            .join('')}Content-Length: 0\r\nConnection: close\r\n\r\n`;
          const { data } = await exchange([Buffer.from(head)], 3_000);
          const text = data.toString('utf8');
          expect(text).toMatch(/^HTTP\/1\.1 (200|204) /);
          const seen = decodeURIComponent(text.replace(/%(?![0-9A-Fa-f]{2})/g, '%25'));
          for (const s of secrets) {
            expect(text.includes(s) || seen.includes(s) || text.includes(Buffer.from(`u:${s}`).toString('base64')), `a secret reached the app: ${text.slice(0, 600)}`).toBe(false);
          }
        }),
        8_000,
      );
      await expectServing();
    },
    timeoutFor(8_000, 20 * 60_000),
  );

  it(
    'frames hostile app responses strictly: a well-formed answer, a 502, or a close; never two answers from one',
    async () => {
      const line = fc.constantFrom('HTTP/1.1 200 OK', 'HTTP/1.1 204 No Content', 'HTTP/1.1 304 Not Modified', 'HTTP/1.1 101 Switching Protocols', 'HTTP/1.1 100 Continue', 'HTTP/1.0 200 OK', 'HTTP/1.1 999 X', 'HTTP/1.1 2OO', 'HTTP/1.1 302 Found');
      const field = fc.oneof(
        fc.constantFrom(
          'Content-Length: 5',
          'Content-Length: 500',
          'Content-Length: 0',
          'Content-Length: 5, 6',
          'Content-Length: +5',
          'Transfer-Encoding: chunked',
          'Transfer-Encoding: gzip',
          'Transfer-Encoding: gzip, chunked',
          'Transfer-Encoding: chunked, gzip',
          'Content-Length : 5',
          ' folded',
          'Set-Cookie: a=1; Domain=localhost',
          'Location: http://localhost:9090/x',
          'Connection: close',
          'X-A: a\rb',
          'X-\u0000: 1',
        ),
        fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 })).map(([k, v]) => `${k}: ${v}`),
      );
      const body = fc.constantFrom('', 'hello', '5\r\nhello\r\n0\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED', 'zz\r\n\r\n');
      await fuzz(
        'hostile responses from an app',
        fc.asyncProperty(line, fc.array(field, { maxLength: 5 }), fc.constantFrom('\r\n', '\n'), body, async (status, fields, eol, rest) => {
          const bytes = Buffer.from(`${status}${eol}${fields.join(eol)}${fields.length ? eol : ''}${eol}${rest}`, 'latin1');
          const first = `GET /raw?b=${bytes.toString('base64url')} HTTP/1.1\r\nHost: 9090-${pub}.localhost\r\n\r\n`;
          const second = `GET /ok HTTP/1.1\r\nHost: 9090-${pub}.localhost\r\n\r\n`;
          const { data } = await exchange([Buffer.from(first + second)], 2_000);
          const text = data.toString('latin1');
          let responses;
          try {
            responses = responsesOf(data, 'GET');
          } catch (err) {
            // A 101 turns the connection into raw bytes: nothing after it is HTTP.
            if (status.includes(' 101 ')) return;
            throw new Error(`the client got a response it cannot frame strictly: ${JSON.stringify(text.slice(0, 300))} (${err})`);
          }
          // At most one answer per request.
          expect(responses.filter((r) => r.status >= 200).length).toBeLessThanOrEqual(2);
        }),
        8_000,
      );
      await expectServing();
    },
    timeoutFor(8_000, 20 * 60_000),
  );
});
