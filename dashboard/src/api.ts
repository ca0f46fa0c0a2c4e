// The dashboard's calls to Cove: the control API under /api and the toolbox under /toolbox/{id}, on the origin that
// served the page, every one with the API key in the Authorization header (never in a URL).
import type { FileInfo } from '../../wire/files';
import type { PortPreviewUrl } from '../../wire/preview';
import type { PtySessionInfo } from '../../wire/pty';
import type { CreateSandboxRequest, ListSandboxesResponse, SandboxDto } from '../../wire/sandbox';
import type { SshAccessDto } from '../../wire/ssh';

export type Sandbox = SandboxDto;
export type { FileInfo };

/** A refused or failed call, with the sentence of Cove's error envelope (`{message, code}`). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A toolbox path of one sandbox: `/toolbox/{id}{path}`. */
const toolboxPath = (sandboxId: string, path: string) => `/toolbox/${encodeURIComponent(sandboxId)}${path}`;
const sandboxPath = (sandboxId: string, path = '') => `/api/sandbox/${encodeURIComponent(sandboxId)}${path}`;

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { message?: unknown; code?: unknown };
    if (typeof body.message === 'string') return new ApiError(body.message, res.status, typeof body.code === 'string' ? body.code : undefined);
  } catch {
    // not Cove's envelope: fall through to the status line
  }
  return new ApiError(`${res.status} ${res.statusText || 'error'}${text ? `: ${text.slice(0, 200)}` : ''}`, res.status);
}

/**
 * A client for one API key. `onUnauthorized` runs when Cove refuses the key (revoked, or mistyped), so the page can
 * sign out.
 */
export function createApi(key: string, onUnauthorized: (error: ApiError) => void) {
  async function send(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${key}`);
    if (typeof init.body === 'string') headers.set('Content-Type', 'application/json');
    const res = await fetch(path, { ...init, headers, cache: 'no-store' });
    if (res.ok) return res;
    const error = await errorOf(res);
    if (res.status === 401 && path.startsWith('/api/')) onUnauthorized(error);
    throw error;
  }
  async function json<T>(path: string, init?: RequestInit): Promise<T> {
    const res = await send(path, init);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
  const post = (body?: unknown): RequestInit => ({ method: 'POST', body: body === undefined ? undefined : JSON.stringify(body) });

  return {
    /** The caller's sandboxes, newest first (the first 1000). */
    list: async () => (await json<ListSandboxesResponse>('/api/sandbox?limit=1000&sort=createdAt&order=desc')).items,
    get: (id: string) => json<Sandbox>(sandboxPath(id)),
    create: (body: CreateSandboxRequest) => json<Sandbox>('/api/sandbox', post(body)),
    start: (id: string) => json<Sandbox>(sandboxPath(id, '/start'), post()),
    stop: (id: string) => json<Sandbox>(sandboxPath(id, '/stop'), post()),
    remove: (id: string) => send(sandboxPath(id), { method: 'DELETE' }).then(() => undefined),

    /** A port's preview URL and token (a new token each call, valid until the sandbox is deleted). */
    previewUrl: (id: string, port: number) => json<PortPreviewUrl>(sandboxPath(id, `/ports/${port}/preview-url`)),
    /** Revokes a preview token of a port now (the route that expires signed URLs takes any token of that port). */
    revokePreviewToken: (id: string, port: number, token: string) =>
      send(sandboxPath(id, `/ports/${port}/signed-preview-url/${encodeURIComponent(token)}/expire`), post()).then(() => undefined),
    sshAccess: (id: string, minutes: number) => json<SshAccessDto>(sandboxPath(id, `/ssh-access?expiresInMinutes=${minutes}`), post()),

    homeDir: async (id: string) => (await json<{ dir: string }>(toolboxPath(id, '/user-home-dir'))).dir,
    listFiles: (id: string, path: string) => json<FileInfo[]>(toolboxPath(id, `/files?path=${encodeURIComponent(path)}`)),
    download: async (id: string, path: string) => (await send(toolboxPath(id, `/files/download?path=${encodeURIComponent(path)}`))).blob(),
    upload: (id: string, path: string, file: Blob) => {
      const form = new FormData();
      form.append('file', file);
      return send(toolboxPath(id, `/files/upload?path=${encodeURIComponent(path)}`), { method: 'POST', body: form }).then(() => undefined);
    },
    deleteFile: (id: string, path: string, recursive: boolean) =>
      send(toolboxPath(id, `/files?path=${encodeURIComponent(path)}${recursive ? '&recursive=true' : ''}`), { method: 'DELETE' }).then(() => undefined),

    createPty: (id: string, size: { cols: number; rows: number }) => json<{ sessionId: string }>(toolboxPath(id, '/process/pty'), post(size)),
    ptyInfo: (id: string, sessionId: string) => json<PtySessionInfo>(toolboxPath(id, `/process/pty/${encodeURIComponent(sessionId)}`)),
    deletePty: (id: string, sessionId: string) =>
      send(toolboxPath(id, `/process/pty/${encodeURIComponent(sessionId)}`), { method: 'DELETE' }).then(() => undefined),
    resizePty: (id: string, sessionId: string, size: { cols: number; rows: number }) =>
      send(toolboxPath(id, `/process/pty/${encodeURIComponent(sessionId)}/resize`), post(size)).then(() => undefined),
    /** The WebSocket address of a PTY session (the caller adds the one-use token: browsers cannot set headers there). */
    ptySocketUrl: (id: string, sessionId: string) => {
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      return `${scheme}//${location.host}${toolboxPath(id, `/process/pty/${encodeURIComponent(sessionId)}/connect`)}`;
    },
  };
}
export type Api = ReturnType<typeof createApi>;
