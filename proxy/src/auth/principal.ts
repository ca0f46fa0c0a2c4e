import type { Context } from 'hono';
import type { IncomingHttpHeaders } from 'node:http';
import { CoveError } from '../../../lib/errors';
import type { KeysService, Principal } from './api-keys';

/** The API key in `Authorization: Bearer <key>`, if any. */
export function bearerOf(headers: IncomingHttpHeaders | Headers): string | undefined {
  const value = headers instanceof Headers ? headers.get('authorization') : headers.authorization;
  const match = value ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  return match?.[1];
}

/** Authenticates a request's API key; throws 401 without a valid one. */
export function authenticate(keys: KeysService, headers: IncomingHttpHeaders | Headers): Principal {
  const key = bearerOf(headers);
  const principal = key ? keys.authenticate(key) : undefined;
  if (!principal) throw new CoveError('UNAUTHORIZED', 'Missing or invalid API key (Authorization: Bearer <key>)');
  return principal;
}

/** The principal the auth middleware stored on this request. */
export function principalOf(c: Context): Principal {
  return c.get('principal' as never) as Principal;
}
