import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import S3rver from 's3rver';
import { CoveError } from '../../../lib/errors';
import type { PushAccess } from '../../../wire/object-storage';
import type { Principal } from '../auth/api-keys';
import { S3Error, verifySigV4, type Credentials } from './sigv4';

/** Where the S3-compatible endpoint is served on the API's listener: `{publicUrl}/object-storage`. */
const OBJECT_STORAGE_PATH = '/object-storage';
/** The one bucket: the SDK's default name for build contexts. */
const CONTEXT_BUCKET = 'daytona-volume-builds';
/** The region the credentials are scoped to (the SDK's S3 client needs one). */
const REGION = 'us-east-1';
/** How long push credentials stay valid. */
const CREDENTIALS_TTL_MS = 60 * 60_000;
/** Push credentials kept per API key; a key asking for more loses its oldest. */
const MAX_CREDENTIALS_PER_KEY = 20;
/** The largest body of one request (a PutObject or one part of a multipart upload; the SDK's parts are 5 MiB). */
const MAX_REQUEST_BODY = 256 * 1024 * 1024;
/** A multipart upload unfinished for this long is dropped at the next start. */
const STALE_UPLOAD_MS = 24 * 60 * 60_000;
/** The largest body of a request that only carries XML (a multipart upload's completion). */
const MAX_XML_BODY = 1024 * 1024;

/** A context's hash as the SDK computes it: MD5, hex. */
const CONTEXT_HASH = /^[0-9a-f]{32}$/;

interface Grant extends Credentials {
  keyId: string;
  expiresAt: number;
}

/**
 * Object storage for build contexts (the files of `Image.addLocalFile/addLocalDir`): the SDK asks
 * `/api/object-storage/push-access` for credentials and uploads each context as `{organizationId}/{hash}/context.tar`
 * into one bucket with the AWS S3 client (PutObject, or a multipart upload). Storage is s3rver (an S3-compatible server
 * on the file system, under the data dir), in this process; in front of it, every request must carry a valid AWS
 * Signature V4 of short-lived credentials issued to an API key, and may touch only that key's own context objects
 * in the way the SDK does (list a prefix, put, multipart, head/get, delete). Everything else is refused as S3 does
 * (XML error, 403).
 */
export function createObjectStorage(opts: { dataDir: string; publicUrl: () => string; log: Logger }) {
  const directory = path.join(opts.dataDir, 'object-storage');
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  const s3 = new S3rver({ silent: true, directory, vhostBuckets: false, configureBuckets: [{ name: CONTEXT_BUCKET, configs: [] }] });
  s3.on('error', (err: Error) => opts.log.warn({ err: err.message }, 'object storage request failed'));
  const handler = s3.callback();
  const grants = new Map<string, Grant>();

  function lookup(accessKeyId: string): Credentials | undefined {
    const grant = grants.get(accessKeyId);
    if (!grant) return undefined;
    if (grant.expiresAt <= Date.now()) {
      grants.delete(accessKeyId);
      return undefined;
    }
    return grant;
  }

  /** The folder where s3rver keeps a multipart upload's parts (and the key it was started for). */
  const uploadDirOf = (uploadId: string) => path.join(s3.store.getResourcePath(CONTEXT_BUCKET, undefined, 'uploads'), uploadId);

  /** The object key a multipart upload was started for, or undefined. */
  function uploadKeyOf(uploadId: string): string | undefined {
    try {
      return readFileSync(path.join(uploadDirOf(uploadId), 'key'), 'utf8');
    } catch {
      return undefined;
    }
  }

  /**
   * Allows a request only when it is an S3 operation context uploads use, on the caller's own objects. A multipart
   * upload's id and part number are checked before they reach the store (which makes paths of them), and an upload's
   * parts, completion and abort must name the object the upload was started for.
   */
  function authorize(method: string, objectPath: string, query: URLSearchParams, keyId: string): void {
    const deny = (why: string) => {
      throw new S3Error('AccessDenied', why);
    };
    const slash = objectPath.indexOf('/', 1);
    const bucket = decodeURIComponent(slash < 0 ? objectPath.slice(1) : objectPath.slice(1, slash));
    const key = slash < 0 ? '' : decodeURIComponent(objectPath.slice(slash + 1));
    if (bucket !== CONTEXT_BUCKET) deny(`Only the bucket ${CONTEXT_BUCKET} is served here`);
    const own = `${keyId}/`;
    if (!key) {
      const prefix = query.get('prefix') ?? '';
      if (method !== 'GET' || query.get('list-type') !== '2') deny('On the bucket itself only ListObjectsV2 is allowed');
      if (!prefix.startsWith(own) || !/^([0-9a-f]{32}\/)?$/.test(prefix.slice(own.length))) deny(`Listings must ask for a prefix ${own} or ${own}{hash}/`);
      return;
    }
    const parts = key.split('/');
    if (parts.length !== 3 || `${parts[0]}/` !== own || !CONTEXT_HASH.test(parts[1]) || parts[2] !== 'context.tar') {
      deny(`Objects here are build contexts: ${own}{md5 hex}/context.tar`);
    }
    const names = [...query.keys()];
    const only = (...allowed: string[]) => names.every((n) => allowed.includes(n));
    const uploadId = query.get('uploadId');
    if (uploadId !== null) {
      if (!/^[0-9a-f]{32}$/.test(uploadId)) deny('uploadId is not one this server issued');
      if (uploadKeyOf(uploadId) !== key) deny('No multipart upload of that id was started for this object');
    }
    const partNumber = query.get('partNumber');
    if (partNumber !== null && (!/^[1-9][0-9]{0,4}$/.test(partNumber) || Number(partNumber) > 10_000)) deny('partNumber must be a whole number from 1 to 10000');
    const ok =
      (method === 'PUT' && uploadId === null && partNumber === null && only('x-id')) ||
      (method === 'PUT' && uploadId !== null && partNumber !== null && only('x-id', 'uploadId', 'partNumber')) ||
      (method === 'POST' && uploadId === null && query.has('uploads') && only('x-id', 'uploads')) ||
      (method === 'POST' && uploadId !== null && only('x-id', 'uploadId')) ||
      (method === 'DELETE' && only('x-id', 'uploadId')) ||
      ((method === 'GET' || method === 'HEAD') && uploadId === null && only('x-id', 'partNumber'));
    if (!ok) deny(`${method} with these parameters is not an operation of context uploads`);
  }

  function sendS3Error(res: ServerResponse, err: S3Error, status = 403): void {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${err.code}</Code><Message>${err.message.replace(/[<>&]/g, (c) => `&#${c.charCodeAt(0)};`)}</Message></Error>`;
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml), connection: 'close' });
    res.end(xml);
  }

  return {
    /** Credentials for uploading the caller's build contexts, valid for an hour. */
    pushAccess(principal: Principal): PushAccess {
      const accessKey = `COVE${randomBytes(10).toString('hex').toUpperCase()}`;
      const grant: Grant = {
        keyId: principal.keyId,
        secret: randomBytes(30).toString('base64url'),
        sessionToken: randomBytes(32).toString('base64url'),
        expiresAt: Date.now() + CREDENTIALS_TTL_MS,
      };
      const mine = [...grants].filter(([, g]) => g.keyId === principal.keyId || g.expiresAt <= Date.now());
      for (const [id, g] of mine) if (g.expiresAt <= Date.now()) grants.delete(id);
      const live = mine.filter(([, g]) => g.expiresAt > Date.now());
      for (const [id] of live.slice(0, Math.max(0, live.length - MAX_CREDENTIALS_PER_KEY + 1))) grants.delete(id);
      grants.set(accessKey, grant);
      return {
        accessKey,
        secret: grant.secret,
        sessionToken: grant.sessionToken,
        storageUrl: `${opts.publicUrl()}${OBJECT_STORAGE_PATH}`,
        organizationId: principal.keyId,
        bucket: CONTEXT_BUCKET,
        region: REGION,
      };
    },

    /** Whether a request is for the object storage endpoint. */
    handles(url: string | undefined): boolean {
      return !!url && (url === OBJECT_STORAGE_PATH || url.startsWith(`${OBJECT_STORAGE_PATH}/`) || url.startsWith(`${OBJECT_STORAGE_PATH}?`));
    },

    /** Serves one S3 request: signature, then the caller's permission, then the store. */
    request(req: IncomingMessage, res: ServerResponse): void {
      const url = req.url ?? '/';
      try {
        const { keyId } = grants.get(verifySigV4({ method: req.method ?? 'GET', url, headers: req.headers }, lookup))!;
        const target = new URL(url.slice(OBJECT_STORAGE_PATH.length) || '/', 'http://localhost');
        authorize(req.method ?? 'GET', target.pathname, target.searchParams, keyId);
        const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
        const carriesBody = req.method === 'PUT' || req.method === 'POST';
        if (carriesBody && (length === undefined || !Number.isSafeInteger(length))) {
          res.writeHead(411, { connection: 'close' }).end();
          return;
        }
        const limit = req.method === 'PUT' ? MAX_REQUEST_BODY : MAX_XML_BODY;
        if (length !== undefined && length > limit) {
          sendS3Error(res, new S3Error('AccessDenied', `A request body may hold at most ${limit / 1024 / 1024} MiB here`), 400);
          return;
        }
        // AbortMultipartUpload, which s3rver lacks (the id was checked to be this object's upload above).
        if (req.method === 'DELETE' && target.searchParams.has('uploadId')) {
          rmSync(uploadDirOf(target.searchParams.get('uploadId')!), { recursive: true, force: true });
          res.writeHead(204).end();
          return;
        }
        // The store sees a plain path-style request for a bucket on this host; credentials stop here.
        req.url = `${target.pathname}${target.search}`;
        req.headers.host = 'localhost';
        delete req.headers.authorization;
        delete req.headers['x-amz-security-token'];
        handler(req, res);
      } catch (err) {
        if (err instanceof S3Error) return sendS3Error(res, err);
        if (err instanceof URIError) return sendS3Error(res, new S3Error('AccessDenied', 'The path has malformed percent-encoding'), 400);
        throw err;
      }
    },

    /**
     * The uploaded build context of that hash of the caller's, as a stream of its tar bytes; a 400 naming the hash when
     * it was never uploaded.
     */
    async openContext(keyId: string, hash: string): Promise<Readable> {
      if (!CONTEXT_HASH.test(hash)) throw new CoveError('INVALID_REQUEST', `contextHashes: ${JSON.stringify(hash.slice(0, 80))} is not a context hash (32 hex digits)`);
      const object = (await s3.store.getObject(CONTEXT_BUCKET, `${keyId}/${hash}/context.tar`)) as { content: Readable | null } | null;
      if (!object?.content) throw new CoveError('INVALID_REQUEST', `contextHashes: no build context ${hash} was uploaded with this API key; upload it through /api/object-storage/push-access first`);
      return object.content;
    },

    /** Whether that context of the caller's was uploaded. */
    async hasContext(keyId: string, hash: string): Promise<boolean> {
      return CONTEXT_HASH.test(hash) && (await s3.store.existsObject(CONTEXT_BUCKET, `${keyId}/${hash}/context.tar`)) === true;
    },

    /** Creates the bucket when missing, and removes multipart uploads left unfinished for a day (their parts). */
    async start(): Promise<void> {
      await s3.configureBuckets();
      const uploads = s3.store.getResourcePath(CONTEXT_BUCKET, undefined, 'uploads');
      let ids: string[] = [];
      try {
        ids = readdirSync(uploads);
      } catch {
        return;
      }
      for (const id of ids) {
        const dir = path.join(uploads, id);
        if (Date.now() - statSync(dir).mtimeMs > STALE_UPLOAD_MS) rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
export type ObjectStorage = ReturnType<typeof createObjectStorage>;
