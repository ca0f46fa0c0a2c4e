import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Receives progress lines of a build (the CLI prints them on stderr; the proxy sends them to its logger). */
export type BuildLog = (line: string) => void;

/** Whether a command is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Installs Debian packages that provide the given commands when they are missing (as root), or fails with the
 * apt-get line to run.
 */
export function ensureCommands(commands: Record<string, string>, log: BuildLog = () => {}): void {
  const missing = [...new Set(Object.entries(commands).filter(([cmd]) => !hasCommand(cmd)).map(([, pkg]) => pkg))];
  if (!missing.length) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`Missing tools; install them with: sudo apt-get install -y ${missing.join(' ')}`);
  }
  log(`installing ${missing.join(' ')} (apt-get)`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/** Runs a command, streaming its output lines to `log`; rejects with the tail of its output on failure. */
export function run(cmd: string, args: string[], opts: { cwd?: string; log?: BuildLog; input?: NodeJS.ReadableStream } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    if (opts.input) opts.input.pipe(child.stdin!);
    const tail: string[] = [];
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 30) tail.shift();
        opts.log?.(line);
      }
    };
    child.stdout!.on('data', onLine);
    child.stderr!.on('data', onLine);
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')}… exited with ${code}:\n${tail.join('\n')}`)),
    );
  });
}

/** Runs a docker command and returns its trimmed stdout; throws with docker's stderr. */
export function docker(args: string[]): string {
  try {
    return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`docker ${args.slice(0, 2).join(' ')}… failed: ${stderr || (err as Error).message}`);
  }
}

/** Whether the Docker engine has an image of that name. */
export function imageExists(name: string): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A label of a local image, or undefined when the image or the label is missing. */
export function imageLabel(image: string, label: string): string | undefined {
  try {
    const out = execFileSync('docker', ['image', 'inspect', '--format', `{{ index .Config.Labels ${JSON.stringify(label)} }}`, image], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return out && out !== '<no value>' ? out : undefined;
  } catch {
    return undefined;
  }
}

/** Hex sha256 of the given parts, each length-prefixed so that parts cannot run into each other. */
export function sha256(...parts: (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${Buffer.byteLength(part)}:`).update(part);
  return hash.digest('hex');
}

/**
 * The checkout: the nearest folder above this module with Cove's package.json. Found by walking up because this
 * module runs both from source (images/src/) and from the CLI bundle (dist/).
 */
export function checkoutRoot(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = path.dirname(from); ; dir = path.dirname(dir)) {
    try {
      if ((JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'cove') return dir;
    } catch {
      /* not here */
    }
    if (dir === path.dirname(dir)) throw new Error(`cannot find Cove's checkout above ${from}`);
  }
}

/**
 * Runs `fn` holding an exclusive lock file, so that builds started at once (the proxy's serve and a test run, two
 * test workers) wait for each other instead of writing the same folders and images. A lock left by a process that
 * died is taken over.
 */
export async function withLock<T>(file: string, log: BuildLog, fn: () => Promise<T>): Promise<T> {
  mkdirSync(path.dirname(file), { recursive: true });
  let told = false;
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let text = '';
      let age = 0;
      try {
        text = readFileSync(file, 'utf8');
        age = Date.now() - statSync(file).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      const holder = Number(text);
      // An empty file is a lock being written right now, unless it has stayed empty for a while.
      const stale = text ? !Number.isInteger(holder) || holder <= 0 || !processAlive(holder) : age > 10_000;
      if (stale) {
        rmSync(file, { force: true });
        continue;
      }
      if (!told) log(`waiting for another build (pid ${text || '?'}) to finish`);
      told = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(file, { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
