import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { toRuntimeError } from './docker-errors';
import { dockerdOptions, listeningSocketInodes, runscEntryProblem, runscSnippet, withRunscRuntime, type RuntimeEntry } from './runsc-config';
import { RuntimeError } from './types';

const RELOAD_TIMEOUT_MS = 15_000;

/**
 * Makes sure the Docker engine can run containers under gVisor's `runsc` with the arguments Cove's sandboxes need.
 * When the engine has no runsc runtime yet, adds it to the engine's daemon.json (every other key kept) and sends
 * dockerd SIGHUP, which reloads runtimes without touching running containers; then waits until the engine lists it.
 * Resolves with what it did. Throws a RuntimeError (RUNTIME_SETUP) saying what to run when it cannot.
 */
export async function ensureRunsc(docker: Dockerode): Promise<'registered' | 'present'> {
  const present = await engineRunsc(docker);
  if (present) {
    const problem = runscEntryProblem(present);
    if (problem) throw setupError(`The Docker engine's runsc runtime cannot run Cove's sandboxes: ${problem}. Fix its entry in daemon.json and reload dockerd (\`kill -HUP <dockerd pid>\`)`);
    return 'present';
  }
  const runscPath = findRunsc();
  if (!runscPath) {
    throw setupError("gVisor's runsc is not installed on this host. Install it (as root: `apt-get install -y runsc`) and start Cove again, or use --runtime runc");
  }
  const manual = `add ${runscSnippet(runscPath)} to the engine's daemon.json (merged with what is there) and run \`kill -HUP <dockerd pid>\``;
  if (process.getuid?.() !== 0) {
    throw setupError(`The Docker engine has no runsc runtime, and only root can register it (Cove edits daemon.json and signals dockerd). Start Cove as root once, or ${manual}`);
  }
  // docker-modem holds a path, or a function that finds the default socket.
  const given = (docker.modem as { socketPath?: unknown }).socketPath;
  const socketPath: unknown = typeof given === 'function' ? await (given as () => Promise<unknown>)() : given;
  if (typeof socketPath !== 'string') {
    throw setupError(`The Docker engine has no runsc runtime, and Cove registers it only with a local engine reached over its Unix socket: on the engine's host, ${manual}`);
  }
  const pid = dockerdOwning(socketPath);
  if (!pid) throw setupError(`The Docker engine has no runsc runtime, and no dockerd process on this host listens on ${socketPath}: ${manual}`);
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const { configFile, addsRuntimes } = dockerdOptions(argv.slice(1));
  if (addsRuntimes) {
    // dockerd refuses a file whose keys are also given as flags, and the reload would fail.
    throw setupError(`The Docker engine has no runsc runtime, and dockerd (pid ${pid}) sets its runtimes with --add-runtime, so daemon.json cannot add one: add \`--add-runtime runsc=${runscPath}\` and its arguments to dockerd's command line instead`);
  }
  // The file as dockerd sees it: through its own root and working directory (an engine may run in another mount namespace).
  const file = path.join(`/proc/${pid}/root`, path.isAbsolute(configFile) ? configFile : path.join(readlinkSync(`/proc/${pid}/cwd`), configFile));
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw setupError(`Could not read ${configFile}: ${(err as Error).message}`);
  }
  let merged: string | undefined;
  try {
    merged = withRunscRuntime(text, runscPath);
  } catch (err) {
    throw setupError(`Cove cannot add runsc to ${configFile}: ${(err as Error).message}. Fix the file, or ${manual}`);
  }
  if (merged !== undefined) {
    // Written whole, then renamed: dockerd (or an operator) never reads half a file.
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.cove-${process.pid}`;
    writeFileSync(tmp, merged, { mode: existsSync(file) ? statSync(file).mode & 0o777 : 0o644 });
    renameSync(tmp, file);
  }
  process.kill(pid, 'SIGHUP');
  const deadline = Date.now() + RELOAD_TIMEOUT_MS;
  for (;;) {
    const entry = await engineRunsc(docker);
    if (entry) {
      const problem = runscEntryProblem(entry);
      if (problem) throw setupError(`The runsc runtime in ${configFile} cannot run Cove's sandboxes: ${problem}. Fix it and run \`kill -HUP ${pid}\``);
      return 'registered';
    }
    if (Date.now() > deadline) {
      throw setupError(`dockerd (pid ${pid}) did not load the runsc runtime from ${configFile} within ${RELOAD_TIMEOUT_MS / 1000} s of SIGHUP; its log says why (a reload fails as a whole when the file holds a key dockerd also got as a flag)`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function engineRunsc(docker: Dockerode): Promise<RuntimeEntry | undefined> {
  let info: { Runtimes?: Record<string, RuntimeEntry> };
  try {
    info = (await docker.info()) as typeof info;
  } catch (err) {
    throw toRuntimeError(err, 'read the engine information');
  }
  return info.Runtimes?.runsc;
}

const setupError = (message: string) => new RuntimeError('RUNTIME_SETUP', message);

/** runsc on PATH (or where Debian puts it), as an absolute path. */
function findRunsc(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    const candidate = path.resolve(dir, 'runsc');
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** The pid of the dockerd process listening on the Unix socket at `socketPath`, if any. */
function dockerdOwning(socketPath: string): number | undefined {
  const paths = [socketPath];
  try {
    // /var/run is usually a link to /run, and the socket is listed under the path it was bound at.
    const real = path.join(realpathSync(path.dirname(socketPath)), path.basename(socketPath));
    if (!paths.includes(real)) paths.push(real);
  } catch {
    /* the path alone */
  }
  const inodes = new Set(listeningSocketInodes(readFileSync('/proc/net/unix', 'utf8'), paths).map((i) => `socket:[${i}]`));
  if (!inodes.size) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'dockerd') continue;
      for (const fd of readdirSync(`/proc/${entry}/fd`)) {
        if (inodes.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      }
    } catch {
      /* gone meanwhile */
    }
  }
  return undefined;
}
