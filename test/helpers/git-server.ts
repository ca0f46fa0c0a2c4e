import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Git's smart-HTTP CGI program, from the git package. */
const HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

/** Identity of the commits the helper makes itself, so that no global git config is needed. */
const SEED_IDENTITY = {
  GIT_AUTHOR_NAME: 'Seed',
  GIT_AUTHOR_EMAIL: 'seed@example.test',
  GIT_COMMITTER_NAME: 'Seed',
  GIT_COMMITTER_EMAIL: 'seed@example.test',
};

export interface GitServer {
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** Directory of the bare repositories. */
  root: string;
  username: string;
  password: string;
  /** URL of a repository, without credentials. */
  url(name: string): string;
  /**
   * Creates a bare repository `name.git` whose `main` holds `files` (one commit), plus one commit per extra
   * branch. Returns its URL.
   */
  createRepo(name: string, files?: Record<string, string>, branches?: Record<string, Record<string, string>>): string;
  /** Runs git in the bare repository (to inspect it or install hooks). */
  git(name: string, args: string[]): string;
  /** Requests seen so far: method, path, and whether they carried the right credentials. */
  requests: { method: string; path: string; authorized: boolean }[];
  close(): Promise<void>;
}

/** Runs git synchronously with a fixed identity and no user or system config; throws with git's output. */
export function gitSync(cwd: string, args: string[], env: Record<string, string> = {}): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...SEED_IDENTITY, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', ...env },
  });
}

/**
 * A real git server on loopback: `git http-backend` behind a Node HTTP server that demands HTTP Basic credentials
 * for every request, fetches and pushes alike (401 with a challenge otherwise, as real hosts do).
 * `onRequest` runs when a request arrives, before the backend answers: the client is waiting then, which lets a test
 * look at the client's processes mid-operation.
 */
export async function startGitServer(
  opts: { username?: string; password?: string; onRequest?: (req: http.IncomingMessage) => void } = {},
): Promise<GitServer> {
  const username = opts.username ?? 'cove-user';
  const password = opts.password ?? 'cove-secret-7f3a9c';
  const root = mkdtempSync(path.join(os.tmpdir(), 'cove-git-server-'));
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const requests: GitServer['requests'] = [];

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const authorized = req.headers.authorization === expected;
    requests.push({ method: req.method ?? '', path: url.pathname, authorized });
    opts.onRequest?.(req);
    if (!authorized) {
      req.resume();
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="cove test git"', 'Content-Type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    serveCgi(req, res, url, username);
  });

  function serveCgi(req: http.IncomingMessage, res: http.ServerResponse, url: URL, user: string): void {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      // http-backend enables receive-pack (push) only for authenticated users, which REMOTE_USER says.
      REMOTE_USER: user,
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      AUTH_TYPE: 'Basic',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: root,
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
    // Clients gzip large request bodies; the backend inflates them when told.
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);
    const cgi = spawn(HTTP_BACKEND, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    req.pipe(cgi.stdin);
    cgi.stdin.on('error', () => {});
    let stderr = '';
    cgi.stderr.on('data', (d) => (stderr += d));

    // The CGI answer: header lines, a blank line, then the body, which streams through as it comes.
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const text = head.toString('latin1');
      const m = /\r?\n\r?\n/.exec(text);
      if (!m) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of text.slice(0, m.index).split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon < 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(m.index + m[0].length));
    });
    cgi.on('close', (code) => {
      if (!headersDone) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`git http-backend exited with ${code}: ${stderr}`);
        return;
      }
      res.end();
    });
    res.on('close', () => cgi.kill());
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    root,
    username,
    password,
    requests,
    url: (name) => `${origin}/${name}.git`,
    createRepo(name, files = { 'README.md': `# ${name}\n` }, branches = {}) {
      const bare = path.join(root, `${name}.git`);
      gitSync(root, ['init', '--quiet', '--bare', '--initial-branch=main', bare]);
      const work = mkdtempSync(path.join(os.tmpdir(), 'cove-git-seed-'));
      try {
        gitSync(work, ['init', '--quiet', '--initial-branch=main']);
        const commit = (content: Record<string, string>, message: string) => {
          for (const [file, text] of Object.entries(content)) {
            mkdirSync(path.dirname(path.join(work, file)), { recursive: true });
            writeFileSync(path.join(work, file), text);
          }
          gitSync(work, ['add', '--all']);
          gitSync(work, ['commit', '--quiet', '--allow-empty', '-m', message]);
        };
        commit(files, 'initial commit');
        for (const [branch, content] of Object.entries(branches)) {
          gitSync(work, ['checkout', '--quiet', '-b', branch, 'main']);
          commit(content, `work on ${branch}`);
        }
        gitSync(work, ['checkout', '--quiet', 'main']);
        gitSync(work, ['push', '--quiet', bare, '--all']);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
      return `${origin}/${name}.git`;
    },
    git: (name, args) => gitSync(path.join(root, `${name}.git`), args),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * A shell command (run inside a sandbox) that makes a bare repository `dir/origin.git` whose main branch holds one
 * commit (a.txt), from a working copy left at `dir/seed`: a remote to clone, push to and pull from without a server.
 */
export function seedRepositoryCommand(dir: string): string {
  return [
    `git init -q --bare ${dir}/origin.git`,
    `git --git-dir=${dir}/origin.git symbolic-ref HEAD refs/heads/main`,
    `git init -q -b main ${dir}/seed && cd ${dir}/seed && echo one > a.txt && git add a.txt`,
    `git -c user.name=Seed -c user.email=seed@example.com commit -q -m seed && git push -q ${dir}/origin.git main`,
  ].join(' && ');
}
