import { spawn } from 'node:child_process';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { CoveError } from '../../../lib/errors';
import type { SandboxContext } from '../system/context';
import type { HostCredentials } from './credentials';

/** Where the kept credentials live, under the sandbox user's home. */
const CREDENTIAL_FILE = '.config/cove/git-credentials.json';

/** Most hosts one sandbox keeps credentials for: each is two `-c` settings on every network command. */
const MAX_HOSTS = 64;

/** Largest file read back; a real one is a few hundred bytes per host. */
const MAX_FILE_BYTES = 256 * 1024;

interface StoreFile {
  credentials: HostCredentials[];
}

/**
 * Credentials that `POST /git/credentials` (the SDK's dangerouslyAuthenticate) keeps, one entry per protocol and
 * host, in plain text in `~/.config/cove/git-credentials.json` of the sandbox user (directory 0700, file 0600).
 * Clone, pull, push and remote fetches without credentials of their own hand them to git through the credential
 * helper (credentials.ts), never through argv, git config or a URL. Deleting the file forgets them.
 *
 * The file lives in a directory the sandbox user controls, so the agent (often root) never opens it itself: it is
 * read and written by `/bin/sh` running as that user, which can reach no file the user could not.
 */
export function createCredentialStore(ctx: SandboxContext) {
  const file = path.join(ctx.identity.home, CREDENTIAL_FILE);
  // Writes are read-modify-write: one at a time.
  let queue: Promise<unknown> = Promise.resolve();

  /** Runs a short shell script as the sandbox user, `stdin` on its input; resolves with its output. */
  function asUser(script: string, args: string[], stdin?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', script, 'sh', ...args], {
        cwd: '/',
        env: { PATH: ctx.env.PATH ?? '/usr/bin:/bin', HOME: ctx.identity.home, LC_ALL: 'C' },
        stdio: ['pipe', 'pipe', 'pipe'],
        ...ctx.spawnAs,
      });
      const out: Buffer[] = [];
      let size = 0;
      let err = '';
      child.stdout.on('data', (d: Buffer) => {
        size += d.length;
        if (size <= MAX_FILE_BYTES) out.push(d);
        else child.kill('SIGKILL');
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8').slice(0, 4096)));
      child.stdin.on('error', () => {});
      child.on('error', reject);
      child.on('close', (code) => {
        if (size > MAX_FILE_BYTES) return reject(new Error(`${file} is larger than ${MAX_FILE_BYTES} bytes`));
        if (code !== 0) return reject(new Error(err.trim() || `exit status ${code}`));
        resolve(Buffer.concat(out).toString('utf8'));
      });
      child.stdin.end(stdin ?? '');
    });
  }

  /** The entries in the file; none when it is missing, unreadable or not what this store writes. */
  async function read(): Promise<HostCredentials[]> {
    // Looking (not reading) first spares a process on every network command of sandboxes that keep nothing.
    try {
      await lstat(file);
    } catch {
      return [];
    }
    let text: string;
    try {
      text = await asUser('test -f "$1" || exit 0; exec cat -- "$1"', [file]);
    } catch {
      return [];
    }
    return parse(text);
  }

  return {
    file,

    /** Kept credentials, for commands that talk to a remote without credentials of their own. */
    list: read,

    /** Keeps `entry`, replacing the one of the same protocol and host. */
    save(entry: HostCredentials): Promise<void> {
      const run = queue.then(async () => {
        const others = (await read()).filter((e) => e.protocol !== entry.protocol || e.host.toLowerCase() !== entry.host.toLowerCase());
        if (others.length >= MAX_HOSTS) {
          throw new CoveError('CONFLICT', `Credentials are kept for ${MAX_HOSTS} hosts already; delete ${file} to start over`);
        }
        const content: StoreFile = { credentials: [...others, entry] };
        // umask 077: a new directory is 0700 and the file 0600; the rename replaces the file whole.
        const script = 'set -e; umask 077; mkdir -p -- "$2"; t="$1.tmp.$$"; cat > "$t"; mv -f -- "$t" "$1"';
        try {
          await asUser(script, [file, path.dirname(file)], JSON.stringify(content, null, 2) + '\n');
        } catch (err) {
          const detail = (err as Error).message;
          const denied = /Permission denied|Read-only file system|Operation not permitted/i.test(detail);
          throw new CoveError(
            denied ? 'FILE_ACCESS_DENIED' : 'INTERNAL_ERROR',
            `Could not store the git credentials in ${file} as ${ctx.identity.username}`,
            detail,
          );
        }
      });
      queue = run.catch(() => {});
      return run;
    },
  };
}

/** The entries of a store file; anything else reads as none. */
function parse(text: string): HostCredentials[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return [];
  }
  const list = (data as Partial<StoreFile> | null)?.credentials;
  if (!Array.isArray(list)) return [];
  const str = (v: unknown) => typeof v === 'string' && !/[\0\n\r]/.test(v);
  return list
    .filter(
      (e): e is HostCredentials =>
        e !== null &&
        typeof e === 'object' &&
        (e.protocol === 'https' || e.protocol === 'http') &&
        str(e.host) &&
        /^[A-Za-z0-9.:[\]-]+$/.test(e.host) &&
        str(e.username) &&
        str(e.password),
    )
    .slice(0, MAX_HOSTS)
    .map(({ protocol, host, username, password }) => ({ protocol, host, username, password }));
}
