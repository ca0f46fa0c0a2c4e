import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The S3 error codes this gate answers with (an S3 client turns them into its typed errors). */
type S3ErrorCode = 'AccessDenied' | 'InvalidAccessKeyId' | 'SignatureDoesNotMatch' | 'RequestTimeTooSkewed' | 'ExpiredToken' | 'InvalidToken';

export class S3Error extends Error {
  constructor(
    readonly code: S3ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What a request needs to have its signature checked: the method, the path and query as sent, the headers. */
export interface SignedRequest {
  method: string;
  /** The request target as it came, e.g. `/object-storage/bucket/key?uploads=` (still percent-encoded). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

/** The secret half of credentials, found by access key id. */
export interface Credentials {
  secret: string;
  sessionToken: string;
}

/** How far a request's `x-amz-date` may be from this host's clock (AWS allows 15 minutes). */
const MAX_SKEW_MS = 15 * 60_000;

const sha256 = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

/** RFC 3986 encoding, as SigV4 wants it: everything but unreserved characters, as %XX. */
const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new S3Error('SignatureDoesNotMatch', 'The query string has malformed percent-encoding');
  }
}

/** The canonical query string: each name and value decoded then encoded again, sorted by name, then value. */
function canonicalQuery(query: string): string {
  if (!query) return '';
  const pairs = query
    .split('&')
    .filter(Boolean)
    .map((part) => {
      const eq = part.indexOf('=');
      const name = eq < 0 ? part : part.slice(0, eq);
      const value = eq < 0 ? '' : part.slice(eq + 1);
      return [encode(decode(name)), encode(decode(value))] as const;
    });
  pairs.sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

const headerValue = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(',') : (v ?? '')).trim().replace(/\s+/g, ' ');

/** `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` → its parts. */
function parseAuthorization(header: string) {
  const match = /^AWS4-HMAC-SHA256\s+(.*)$/.exec(header.trim());
  if (!match) throw new S3Error('AccessDenied', 'Only AWS Signature Version 4 (AWS4-HMAC-SHA256) in the Authorization header is accepted');
  const fields = new Map<string, string>();
  for (const part of match[1].split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential')?.split('/');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || credential.length !== 5 || credential[4] !== 'aws4_request' || !signedHeaders || !signature || !/^[0-9a-f]{64}$/.test(signature)) {
    throw new S3Error('AccessDenied', 'The Authorization header is not a well-formed AWS Signature Version 4');
  }
  const [accessKeyId, date, region, service] = credential;
  return { accessKeyId, date, region, service, signedHeaders: signedHeaders.split(';'), signature };
}

/** `20261201T080000Z` → milliseconds, or NaN. */
function amzTime(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
}

/**
 * Checks a request's AWS Signature Version 4 (Authorization header form, as the AWS SDKs send it) against the
 * credentials `lookup` finds for its access key id, including the session token. Resolves to the access key id;
 * throws an S3Error otherwise. The payload hash is the one the client signed (`x-amz-content-sha256`); the body
 * itself is not read here.
 */
export function verifySigV4(req: SignedRequest, lookup: (accessKeyId: string) => Credentials | undefined, now = Date.now()): string {
  const authorization = headerValue(req.headers.authorization);
  if (!authorization) throw new S3Error('AccessDenied', 'The request is not signed: ask /api/object-storage/push-access for credentials');
  const auth = parseAuthorization(authorization);
  const creds = lookup(auth.accessKeyId);
  if (!creds) throw new S3Error('InvalidAccessKeyId', 'The access key id is unknown or has expired: ask /api/object-storage/push-access again');
  const token = headerValue(req.headers['x-amz-security-token']);
  if (!token || token.length !== creds.sessionToken.length || !timingSafeEqual(Buffer.from(token), Buffer.from(creds.sessionToken))) {
    throw new S3Error('InvalidToken', 'The session token does not belong to these credentials');
  }
  const amzDate = headerValue(req.headers['x-amz-date']);
  const time = amzTime(amzDate);
  if (Number.isNaN(time) || amzDate.slice(0, 8) !== auth.date) throw new S3Error('AccessDenied', 'x-amz-date is missing or does not match the credential scope');
  if (Math.abs(now - time) > MAX_SKEW_MS) throw new S3Error('RequestTimeTooSkewed', "The request's time differs from the server's by more than 15 minutes");
  if (auth.service !== 's3') throw new S3Error('AccessDenied', `The credential scope names service ${auth.service.slice(0, 20)}, not s3`);
  for (const required of ['host', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token']) {
    if (!auth.signedHeaders.includes(required)) throw new S3Error('AccessDenied', `The signature must cover the ${required} header`);
  }
  const payloadHash = headerValue(req.headers['x-amz-content-sha256']);
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const query = q < 0 ? '' : req.url.slice(q + 1);
  const canonical = [
    req.method.toUpperCase(),
    path,
    canonicalQuery(query),
    auth.signedHeaders.map((h) => `${h}:${headerValue(req.headers[h])}\n`).join(''),
    auth.signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${creds.secret}`, auth.date);
  for (const part of [auth.region, auth.service, 'aws4_request']) key = hmac(key, part);
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest();
  if (!timingSafeEqual(expected, Buffer.from(auth.signature, 'hex'))) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature does not match the one computed with these credentials');
  }
  return auth.accessKeyId;
}
