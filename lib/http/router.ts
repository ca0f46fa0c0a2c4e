import type { Context, Hono } from 'hono';
import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { ErrorBody } from '../../wire/errors';
import { CoveError } from '../errors';
import { unexpected } from '../guard';

type Method = 'get' | 'post' | 'put' | 'delete' | 'patch';
type Schema = z.ZodType | undefined;
type Infer<T> = T extends z.ZodType ? z.output<T> : undefined;

/** One HTTP route: its documentation and validation in one place. Paths use OpenAPI's `{param}` syntax. */
interface RouteSpec<Q extends Schema, B extends Schema> {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  query?: Q;
  /** JSON request body. */
  body?: B;
  /** Other request body kinds, for the document only (the handler reads the raw request). */
  rawBody?: 'multipart/form-data' | 'application/octet-stream';
  /** JSON response (for the document). */
  response?: z.ZodType;
  /** Non-JSON response type (for the document). */
  rawResponse?: string;
  /** Success status; 200 by default, 204 when the handler returns nothing. */
  status?: 200 | 201 | 202 | 204;
}

interface RouteInput<Q extends Schema, B extends Schema> {
  query: Infer<Q>;
  body: Infer<B>;
  params: Record<string, string>;
  c: Context;
}

/** A WebSocket route. `protocols` picks the subprotocol to echo from those the client offered. */
export interface WsSpec {
  path: string;
  summary: string;
  tag: string;
  query?: z.ZodType;
  protocols?: (offered: string[]) => string | false;
}

export interface WsInput {
  socket: WebSocket;
  params: Record<string, string>;
  // Parsed with the route's own `query` schema; each handler reads it as that wire shape.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  query: any;
  req: IncomingMessage;
}

/** A raw upgrade (not WebSocket): the handler owns the socket once the request is authenticated and matched. */
export interface RawUpgradeInput {
  socket: Duplex;
  head: Buffer;
  params: Record<string, string>;
  // As in WsInput.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  query: any;
  req: IncomingMessage;
}

export interface WsRoute {
  spec: WsSpec;
  match: (pathname: string) => Record<string, string> | undefined;
  handle?: (input: WsInput) => void;
  /** Set for raw upgrades (router.tunnel): no WebSocket handshake happens. */
  handleRaw?: (input: RawUpgradeInput) => void;
}

/** Formats zod issues as one sentence: `body.command: expected string, received number`. */
export function describeIssues(where: string, error: z.ZodError): string {
  return error.issues
    .map((i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`)
    .join('; ');
}

export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new CoveError('INVALID_REQUEST', `Invalid request ${describeIssues(where, result.error)}`);
  return result.data;
}

/**
 * `COVE_CHECK_RESPONSES=1` makes every router parse each JSON answer of a route with its `response` schema before
 * sending it, so the published OpenAPI documents cannot drift from what handlers answer. The test helpers set it for
 * every agent and server they start; production leaves it unset, and then no route does any extra work. Read once,
 * when this module loads: a switch of the test suite, not configuration, so it is not among the options main.ts reads.
 */
const CHECK_RESPONSES = process.env.COVE_CHECK_RESPONSES === '1';

/**
 * A short description of a value's types for logs (`{name: string, files: [{…} ×120]}`), never the value itself:
 * a mismatched answer may be large or hold file contents.
 */
export function shapeOf(value: unknown, depth = 3): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return depth <= 0 ? `[… ×${value.length}]` : `[${shapeOf(value[0], depth - 1)}${value.length > 1 ? ` ×${value.length}` : ''}]`;
  }
  if (typeof value !== 'object') return typeof value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (depth <= 0) return entries.length ? '{…}' : '{}';
  const shown = entries.slice(0, 20).map(([k, v]) => `${k.length > 40 ? `${k.slice(0, 40)}…` : k}: ${shapeOf(v, depth - 1)}`);
  if (entries.length > 20) shown.push(`… ${entries.length - 20} more`);
  return `{${shown.join(', ')}}`;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Fields of `sent` that parsing dropped (zod objects strip keys they do not declare): what a handler answers but the
 * schema, and so the OpenAPI document, does not say. Records and loose objects keep their keys, so they report none.
 */
export function undocumentedFields(sent: unknown, parsed: unknown, where = 'response', found: string[] = []): string[] {
  if (found.length >= 10) return found;
  if (Array.isArray(sent) && Array.isArray(parsed) && sent.length === parsed.length) {
    sent.forEach((item, i) => undocumentedFields(item, parsed[i], `${where}.${i}`, found));
  } else if (isPlainObject(sent) && isPlainObject(parsed)) {
    for (const key of Object.keys(sent)) {
      if (found.length >= 10) break;
      if (!(key in parsed)) found.push(`${where}.${key}`);
      else undocumentedFields(sent[key], parsed[key], `${where}.${key}`, found);
    }
  }
  return found;
}

/**
 * Parses what a route is about to send (as a client will receive it: through JSON) with its response schema; a value
 * that does not parse, or has fields the schema does not declare, does not match. A mismatch is an unexpected error:
 * reported once (the route, what differs and the shape of the value, never the value) and thrown as the 500 that
 * names the same error id.
 */
export function checkResponse(spec: Pick<RouteSpec<Schema, Schema>, 'method' | 'path'>, schema: z.ZodType, value: unknown): void {
  const sent: unknown = value === undefined ? undefined : JSON.parse(JSON.stringify(value));
  const result = schema.safeParse(sent);
  const extra = result.success ? undocumentedFields(sent, result.data) : [];
  if (result.success && extra.length === 0) return;
  const differences = result.success ? `fields the schema does not declare: ${extra.join(', ')}` : describeIssues('response', result.error);
  const where = `${spec.method.toUpperCase()} ${spec.path}`;
  throw unexpected(new Error(`Response of ${where} does not match its schema: ${differences}; shape ${shapeOf(sent)}`), where);
}

const toHonoPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');

function compilePath(path: string): (pathname: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const source = path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{(\w+)\\?\}/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  const re = new RegExp(`^${source}/?$`);
  return (pathname) => {
    const m = re.exec(pathname);
    if (!m) return undefined;
    const params: Record<string, string> = {};
    for (const [i, n] of names.entries()) {
      try {
        params[n] = decodeURIComponent(m[i + 1]);
      } catch {
        throw new CoveError('INVALID_REQUEST', `Malformed percent-encoding in the path parameter ${n}`);
      }
    }
    return params;
  };
}

/**
 * Largest JSON body a route accepts by default: JSON bodies are read whole, so an endless one must not fill memory.
 * (The agent takes whole files in some JSON bodies, such as LSP didOpen; the control API sets a smaller limit.)
 */
const MAX_JSON_BODY = 16 * 1024 * 1024;

async function readText(c: Context, limit: number): Promise<string> {
  const shown = limit >= 1024 * 1024 ? `${limit / 1024 / 1024} MiB` : `${limit / 1024} KiB`;
  const tooLarge = () => new CoveError('PAYLOAD_TOO_LARGE', `JSON bodies are limited to ${shown}`);
  if (Number(c.req.header('content-length') ?? 0) > limit) throw tooLarge();
  // Served by @hono/node-server, the Node request itself is read: building a web Request and its ReadableStream
  // first cost about 0.2 ms per request, a third of a warm LSP completion's time in the agent.
  // Leaving the loop early (too large) must not destroy the request: that would reset the connection before the
  // 413 is written. The server closes it once the answer is out (lib/http/node.ts closeUnreadBodies).
  const incoming = (c.env as { incoming?: Readable } | undefined)?.incoming;
  const body = incoming ? incoming.iterator({ destroyOnReturn: false }) : c.req.raw.body;
  if (!body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(c: Context, limit: number): Promise<unknown> {
  const text = await readText(c, limit);
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CoveError('INVALID_JSON', 'The request body is not valid JSON', (err as Error).message);
  }
}

/**
 * Registers HTTP and WebSocket routes and keeps what the OpenAPI document needs. Route modules call
 * `router.route(spec, handler)`; handlers return a Response, a JSON-able value, or nothing (204).
 */
export class Router {
  readonly routes: RouteSpec<Schema, Schema>[] = [];
  readonly wsRoutes: WsRoute[] = [];

  constructor(
    private readonly app: Hono,
    private readonly opts: {
      maxJsonBody?: number;
      /** Parse every JSON answer with its route's `response` schema (see CHECK_RESPONSES, the default). */
      checkResponses?: boolean;
    } = {},
  ) {}

  route<Q extends Schema = undefined, B extends Schema = undefined>(
    spec: RouteSpec<Q, B>,
    handler: (input: RouteInput<Q, B>) => unknown,
  ): void {
    this.routes.push(spec);
    // Decided once per route: without the check the handler path is the same as it always was.
    const checked = (this.opts.checkResponses ?? CHECK_RESPONSES) ? spec.response : undefined;
    this.app.on(spec.method.toUpperCase(), toHonoPath(spec.path), async (c) => {
      const query = spec.query ? parseOrThrow(spec.query, queryOf(c), 'query') : undefined;
      const body = spec.body ? parseOrThrow(spec.body, await readJson(c, this.opts.maxJsonBody ?? MAX_JSON_BODY), 'body') : undefined;
      const result = await handler({ query, body, params: c.req.param(), c } as RouteInput<Q, B>);
      if (result instanceof Response) {
        // A handler that sets its own status (a 202) answers with a Response; its JSON is checked the same way.
        if (checked && result.ok && result.status !== 204 && result.headers.get('content-type')?.startsWith('application/json')) {
          checkResponse(spec, checked, await result.clone().json());
        }
        return result;
      }
      if (result === undefined) return c.body(null, 204);
      if (checked) checkResponse(spec, checked, result);
      return c.json(result as object, (spec.status ?? 200) as 200);
    });
  }

  ws(spec: WsSpec, handle: (input: WsInput) => void): void {
    this.wsRoutes.push({ spec, match: compilePath(spec.path), handle });
  }

  /** A raw byte tunnel over an HTTP upgrade (e.g. `Upgrade: cove-tcp`): the handler answers 101 itself. */
  tunnel(spec: Omit<WsSpec, 'protocols'>, handleRaw: (input: RawUpgradeInput) => void): void {
    this.wsRoutes.push({ spec, match: compilePath(spec.path), handleRaw });
  }

  /** The OpenAPI 3.1 document of every registered route. */
  openapi(info: { title: string; version: string }): object {
    const paths: Record<string, Record<string, unknown>> = {};
    const errorRef = { $ref: '#/components/schemas/Error' };
    const errorResponse = { description: 'Error', content: { 'application/json': { schema: errorRef } } };
    const queryParams = (schema: z.ZodType | undefined) => {
      if (!schema) return [];
      const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as {
        properties?: Record<string, object>;
        required?: string[];
      };
      return Object.entries(json.properties ?? {}).map(([name, s]) => ({
        name,
        in: 'query',
        required: json.required?.includes(name) ?? false,
        schema: s,
      }));
    };
    const pathParams = (path: string) =>
      [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const schemaOf = (s: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(s, { io, unrepresentable: 'any' });

    for (const r of this.routes) {
      const op: Record<string, unknown> = {
        summary: r.summary,
        tags: [r.tag],
        parameters: [...pathParams(r.path), ...queryParams(r.query)],
        responses: {
          [String(r.status ?? 200)]: {
            description: 'Success',
            ...(r.response
              ? { content: { 'application/json': { schema: schemaOf(r.response, 'output') } } }
              : r.rawResponse
                ? { content: { [r.rawResponse]: {} } }
                : {}),
          },
          '4XX': errorResponse,
          '5XX': errorResponse,
        },
      };
      if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: schemaOf(r.body, 'input') } } };
      else if (r.rawBody) op.requestBody = { required: true, content: { [r.rawBody]: {} } };
      (paths[r.path] ??= {})[r.method] = op;
    }
    for (const { spec, handleRaw } of this.wsRoutes) {
      const kind = handleRaw ? 'raw upgrade' : 'WebSocket';
      const item = (paths[spec.path] ??= {});
      const http = item.get as { description?: string } | undefined;
      if (http) {
        // The same path answers plain GETs and WebSocket upgrades: document both on the one operation.
        http.description = `With an Upgrade: websocket header: ${spec.summary}.`;
        continue;
      }
      item.get = {
        summary: `${spec.summary} (${kind})`,
        tags: [spec.tag],
        parameters: [...pathParams(spec.path), ...queryParams(spec.query)],
        responses: { '101': { description: `Switching protocols (${kind})` }, '4XX': errorResponse },
      };
    }
    return {
      openapi: '3.1.0',
      info,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
        schemas: { Error: z.toJSONSchema(ErrorBody) },
      },
      security: [{ bearer: [] }],
      paths,
    };
  }
}

/** The query string as one value per name, or a list where a name is repeated (`states=a&states=b`). */
function queryOf(c: Context): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, values] of Object.entries(c.req.queries())) out[name] = values.length === 1 ? values[0] : values;
  return out;
}
