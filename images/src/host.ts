import { execFileSync, spawn } from 'node:child_process';

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
export function ensureCommands(commands: Record<string, string>, log: (line: string) => void = () => {}): void {
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
export function run(cmd: string, args: string[], opts: { cwd?: string; log?: (line: string) => void; input?: NodeJS.ReadableStream } = {}): Promise<void> {
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
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')}… exited with ${code}:\n${tail.join('\n')}`)),
    );
  });
}
