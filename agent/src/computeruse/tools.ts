import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { CoveError } from '../../../lib/errors';
import { signalGroup } from '../system/process-group';

/** The image that has every program computer use runs, and how to get it. */
const DESKTOP_IMAGE_HINT = 'create the sandbox from the desktop image cove-desktop:latest (built by `cove images build --desktop`)';

/** The Debian package of each program computer use runs (for the message when one is missing). */
const PACKAGES: Record<string, string> = {
  Xvfb: 'xvfb',
  'dbus-launch': 'dbus-x11',
  'xfce4-session': 'xfce4',
  x11vnc: 'x11vnc',
  websockify: 'novnc',
  xdotool: 'xdotool',
  convert: 'imagemagick',
  xdpyinfo: 'x11-utils',
  wmctrl: 'wmctrl',
  ffmpeg: 'ffmpeg',
};

/** Whether `command` is an executable file in one of PATH's folders. */
function onPath(command: string, pathVar: string): boolean {
  for (const dir of pathVar.split(':')) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/**
 * Throws a 400 naming the desktop image when any of `commands` is not on the sandbox's PATH. Found commands are
 * remembered (an image does not lose programs); missing ones are looked for again on the next call.
 */
export function createToolCheck(pathOf: () => string) {
  const found = new Set<string>();
  return (commands: string[], what: string): void => {
    const missing = commands.filter((c) => !found.has(c) && !onPath(c, pathOf()));
    for (const c of commands) if (!missing.includes(c)) found.add(c);
    if (missing.length === 0) return;
    const packages = [...new Set(missing.map((m) => PACKAGES[m] ?? m))];
    throw new CoveError(
      'INVALID_REQUEST',
      `${what} needs the desktop image: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed in this sandbox; ${DESKTOP_IMAGE_HINT}, or install the Debian packages ${packages.join(', ')} in its image`,
      `PATH=${pathOf()}`,
    );
  };
}

interface RunOptions {
  env: Record<string, string>;
  cwd: string;
  spawnAs: { uid?: number; gid?: number };
  /** Bytes written to stdin (then closed); stdin is /dev/null without. */
  input?: Buffer;
  timeoutMs?: number;
}

/** Largest stdout a tool may print (a screenshot of a large display as PPM). */
const MAX_STDOUT = 256 * 1024 * 1024;

/**
 * Runs a tool (argv, no shell) and resolves with its stdout. A non-zero exit, a timeout or an output too large is a
 * 500 CoveError whose detail is the end of its stderr.
 */
export function runTool(command: string, args: string[], opts: RunOptions): Promise<Buffer> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env, cwd: opts.cwd, detached: true, stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'], ...opts.spawnAs });
    const out: Buffer[] = [];
    let size = 0;
    let err = '';
    let failure: string | undefined;
    const timer = setTimeout(() => {
      failure = `did not finish within ${timeoutMs / 1000} s`;
      signalGroup(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.stdout!.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_STDOUT) {
        failure = `printed more than ${MAX_STDOUT} bytes`;
        signalGroup(child.pid, 'SIGKILL');
        return;
      }
      out.push(b);
    });
    child.stderr!.on('data', (b: Buffer) => {
      err = (err + b.toString('utf8')).slice(-4096);
    });
    if (opts.input) {
      child.stdin!.on('error', () => {
        // The tool exited without reading all of it: its exit status says why.
      });
      child.stdin!.end(opts.input);
    }
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CoveError('INTERNAL_ERROR', `${command} could not be run`, e.message));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failure || code !== 0) {
        const why = failure ?? (signal ? `was killed by ${signal}` : `exited with code ${code}`);
        reject(new CoveError('INTERNAL_ERROR', `${command} ${why}`, err.trim() || undefined));
        return;
      }
      resolve(Buffer.concat(out));
    });
  });
}
