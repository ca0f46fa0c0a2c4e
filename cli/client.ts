import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import type { SandboxDto } from '../wire/sandbox';
import type { Connection } from './config';

/** An error answer of the server: its message, HTTP status and Cove error code. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The message of an error body (`{message, code}`), else of its status. */
export function apiErrorOf(status: number, body: string): ApiError {
  let message: string | undefined;
  let code: string | undefined;
  try {
    const parsed = JSON.parse(body) as { message?: unknown; code?: unknown; error?: unknown };
    if (typeof parsed.message === 'string') message = parsed.message;
    else if (typeof parsed.error === 'string') message = parsed.error;
    if (typeof parsed.code === 'string') code = parsed.code;
  } catch {
    if (body.trim() && body.length < 500 && !body.trimStart().startsWith('<')) message = body.trim();
  }
  message ??= `the server answered ${status}`;
  if (status === 401) message += ' (check the API key, or run `cove login` again)';
  return new ApiError(`${message} (HTTP ${status}${code ? ` ${code}` : ''})`, status, code);
}

/** A request that could not reach the server, said with its cause (ECONNREFUSED, ENOTFOUND…). */
function unreachable(url: string, err: unknown): Error {
  const { cause, code } = err as { cause?: { message?: string; code?: string }; code?: string };
  const why = cause?.code ?? cause?.message ?? code ?? (err instanceof Error ? err.message : String(err));
  return new Error(`cannot reach the Cove server at ${new URL(url).origin}: ${why}`);
}

interface RequestOptions {
  method?: string;
  /** Sent as JSON. */
  json?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  headers?: Record<string, string>;
  /** A raw body (a stream is sent as it is read). */
  body?: BodyInit | AsyncIterable<Uint8Array>;
}

/** A small client of the Cove server: the API key on every call, error bodies turned into ApiErrors. */
export type Client = ReturnType<typeof createClient>;

export function createClient(connection: Connection) {
  const auth = { Authorization: `Bearer ${connection.apiKey}` };

  const withQuery = (url: string, query: RequestOptions['query']): string => {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query ?? {})) if (value !== undefined) params.set(name, String(value));
    const search = params.toString();
    return search ? `${url}${url.includes('?') ? '&' : '?'}${search}` : url;
  };

  /** Any request with the key; a 4xx or 5xx answer is thrown as an ApiError. */
  async function send(url: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...auth, ...opts.headers };
    let body = opts.body;
    if (opts.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    const streamed = body !== undefined && typeof body === 'object' && Symbol.asyncIterator in body;
    let res: Response;
    try {
      res = await fetch(withQuery(url, opts.query), {
        method: opts.method ?? 'GET',
        headers,
        body: body as BodyInit | undefined,
        ...(streamed ? { duplex: 'half' } : {}),
      });
    } catch (err) {
      throw unreachable(url, err);
    }
    if (!res.ok) throw apiErrorOf(res.status, await res.text().catch(() => ''));
    return res;
  }

  /** A call whose answer is JSON (or nothing: undefined). */
  async function json<T>(url: string, opts: RequestOptions = {}): Promise<T> {
    const res = await send(url, { ...opts, headers: { Accept: 'application/json', ...opts.headers } });
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  return {
    apiUrl: connection.apiUrl,
    send,
    json,
    /** A control API call: `path` under the API URL. */
    api: <T>(path: string, opts: RequestOptions = {}) => json<T>(`${connection.apiUrl}${path}`, opts),

    /**
     * The toolbox base URL of a sandbox (by id or name): `{toolboxProxyUrl}/{id}`. A sandbox that is not started is
     * refused here, with the command that starts it.
     */
    async toolbox(sandbox: string): Promise<{ base: string; id: string }> {
      const dto = await json<SandboxDto>(`${connection.apiUrl}/sandbox/${encodeURIComponent(sandbox)}`);
      if (dto.state !== 'started') throw new Error(`sandbox ${dto.id} is ${dto.state}${dto.state === 'stopped' ? `: start it with \`cove sandbox start ${dto.id}\`` : ''}`);
      const { url } = await json<{ url: string }>(`${connection.apiUrl}/sandbox/${encodeURIComponent(dto.id)}/toolbox-proxy-url`);
      return { base: `${url.replace(/\/$/, '')}/${encodeURIComponent(dto.id)}`, id: dto.id };
    },

    /**
     * Opens a WebSocket with the key; a refused upgrade rejects with the server's error. `onMessage` listens from the
     * start: messages that arrive with the upgrade's answer are emitted before the promise settles.
     */
    openSocket(url: string, onMessage: (data: Buffer, isBinary: boolean) => void): Promise<WebSocket> {
      const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers: auth, perMessageDeflate: false });
      ws.on('message', onMessage);
      return new Promise((resolve, reject) => {
        ws.once('unexpected-response', (_req, res: IncomingMessage) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => reject(apiErrorOf(res.statusCode ?? 0, text)));
          res.on('error', reject);
        });
        ws.once('error', (err) => reject(unreachable(url.replace(/^ws/, 'http'), err)));
        ws.once('open', () => resolve(ws));
      });
    },
  };
}
