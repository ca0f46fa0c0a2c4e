import type { Context, Hono } from 'hono';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { ErrorBody } from '../../wire/errors';
import { CoveError } from '../errors';

type Method = 'get' | 'post' | 'put' | 'delete' | 'patch';
type Schema = z.ZodType | undefined;
type Infer<T> = T extends z.ZodType ? z.output<T> : undefined;

/** One HTTP route: its documentation and validation in one place. Paths use OpenAPI's `{param}` syntax. */
export interface RouteSpec<Q extends Schema, B extends Schema> {
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

export interface RouteInput<Q extends Schema, B extends Schema> {
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
  query: any;
  req: IncomingMessage;
}

/** A raw upgrade (not WebSocket): the handler owns the socket once the request is authenticated and matched. */
export interface RawUpgradeInput {
  socket: Duplex;
  head: Buffer;
  params: Record<string, string>;
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

const toHonoPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');

function compilePath(path: string): (pathname: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const source = path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{(\w+)\\?\}/g, (_m, name) => {
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
export const MAX_JSON_BODY = 16 * 1024 * 1024;

async function readText(c: Context, limit: number): Promise<string> {
  const shown = limit >= 1024 * 1024 ? `${limit / 1024 / 1024} MiB` : `${limit / 1024} KiB`;
  const tooLarge = () => new CoveError('PAYLOAD_TOO_LARGE', `JSON bodies are limited to ${shown}`);
  if (Number(c.req.header('content-length') ?? 0) > limit) throw tooLarge();
  // Served by @hono/node-server, the Node request itself is read: building a web Request and its ReadableStream
  // first cost about 0.2 ms per request, a third of a warm LSP completion's time in the agent.
  const incoming = (c.env as { incoming?: AsyncIterable<Uint8Array> } | undefined)?.incoming;
  const body = incoming ?? c.req.raw.body;
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
    private readonly opts: { maxJsonBody?: number } = {},
  ) {}

  route<Q extends Schema = undefined, B extends Schema = undefined>(
    spec: RouteSpec<Q, B>,
    handler: (input: RouteInput<Q, B>) => unknown,
  ): void {
    this.routes.push(spec as RouteSpec<Schema, Schema>);
    this.app.on(spec.method.toUpperCase(), toHonoPath(spec.path), async (c) => {
      const query = spec.query ? parseOrThrow(spec.query, c.req.query(), 'query') : undefined;
      const body = spec.body ? parseOrThrow(spec.body, await readJson(c, this.opts.maxJsonBody ?? MAX_JSON_BODY), 'body') : undefined;
      const result = await handler({ query, body, params: c.req.param() as Record<string, string>, c } as RouteInput<Q, B>);
      if (result instanceof Response) return result;
      if (result === undefined) return c.body(null, 204);
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
