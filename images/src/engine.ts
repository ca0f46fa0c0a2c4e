import { execFileSync, spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { hasCommand, type BuildLog } from './host';

/** What decides how to get a Docker engine answering on this machine. */
export interface EngineFacts {
  /** `docker info` succeeded. */
  answers: boolean;
  /** Why `docker info` failed (its stderr), when it did. */
  error?: string;
  /** The docker CLI and the engine (dockerd) are on PATH. */
  hasClient: boolean;
  hasEngine: boolean;
  root: boolean;
  /** systemd runs the machine (it then starts dockerd as a service). */
  systemd: boolean;
  /** DOCKER_HOST names an engine elsewhere (tcp://, ssh://): nothing here can start it. */
  remote: boolean;
}

/** One step towards an answering engine; `say` is the line printed before it. */
type EngineStep = { do: 'install'; say: string } | { do: 'start-service'; say: string } | { do: 'start-dockerd'; say: string } | { do: 'wait'; say: string };

/** The one command a user who is not root runs to get an engine (with sudo). */
function commandForUser(facts: EngineFacts): string {
  const start = facts.systemd ? 'sudo systemctl start docker' : 'sudo dockerd >/var/log/dockerd.log 2>&1 &';
  if (!facts.hasEngine || !facts.hasClient) return facts.systemd ? 'sudo apt-get install -y docker.io' : `sudo apt-get install -y docker.io && ${start}`;
  return start;
}

/**
 * The steps from these facts to an answering engine, or an Error saying what to run: nothing when it answers; as root
 * on Debian/Ubuntu, `apt-get install docker.io` when dockerd or the CLI is missing, then the service started (systemd)
 * or dockerd started in the background; otherwise the one command to run.
 */
export function planEngine(facts: EngineFacts): EngineStep[] | Error {
  if (facts.answers) return [];
  if (facts.remote) return new Error(`the Docker engine at DOCKER_HOST=${process.env.DOCKER_HOST} does not answer: ${facts.error ?? 'no answer'}`);
  if (facts.hasEngine && facts.hasClient && /permission denied/i.test(facts.error ?? '')) {
    return new Error('the Docker engine runs but this user may not use it: run Cove as root, or add the user to the docker group (sudo usermod -aG docker $USER, then log in again)');
  }
  if (!facts.root) {
    const what = facts.hasEngine ? 'the Docker engine is installed but not running' : 'the Docker engine is not installed';
    return new Error(`${what}; run: ${commandForUser(facts)}`);
  }
  const steps: EngineStep[] = [];
  if (!facts.hasEngine || !facts.hasClient) steps.push({ do: 'install', say: 'the Docker engine is not installed: installing it (apt-get install docker.io)' });
  if (facts.systemd) steps.push({ do: 'start-service', say: 'starting the Docker engine (systemctl start docker)' });
  else steps.push({ do: 'start-dockerd', say: `starting the Docker engine (dockerd, its log in ${DOCKERD_LOG})` });
  steps.push({ do: 'wait', say: 'waiting for the Docker engine to answer' });
  return steps;
}

/** Where a dockerd that Cove starts itself (no systemd) writes its log. */
const DOCKERD_LOG = '/var/log/cove-dockerd.log';
const WAIT_MS = 60_000;

function dockerInfo(): { ok: true } | { ok: false; error: string } {
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    return { ok: true };
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return { ok: false, error: stderr || (err as Error).message };
  }
}

/** This machine's facts, read now. */
function readEngineFacts(): EngineFacts {
  const hasClient = hasCommand('docker');
  const info = hasClient ? dockerInfo() : { ok: false as const, error: 'the docker command is missing' };
  const host = process.env.DOCKER_HOST ?? '';
  return {
    answers: info.ok,
    error: info.ok ? undefined : info.error,
    hasClient,
    hasEngine: hasCommand('dockerd'),
    root: process.getuid?.() === 0,
    systemd: existsSync('/run/systemd/system'),
    remote: host !== '' && !host.startsWith('unix://'),
  };
}

/**
 * Makes sure a Docker engine answers: installs and starts it when missing or stopped (as root, saying so in a line
 * each), or throws saying the one command to run. Cheap when it answers already (one `docker info`).
 */
export async function ensureDockerEngine(log: BuildLog): Promise<void> {
  const plan = planEngine(readEngineFacts());
  if (plan instanceof Error) throw plan;
  for (const step of plan) {
    log(step.say);
    if (step.do === 'install') {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
      execFileSync('apt-get', ['install', '-y', '-qq', 'docker.io'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    } else if (step.do === 'start-service') {
      execFileSync('systemctl', ['start', 'docker'], { stdio: ['ignore', 'ignore', 'inherit'] });
    } else if (step.do === 'start-dockerd') {
      // Installing docker.io may have started it already (a policy-rc.d-free machine): start only if it still does not answer.
      if (dockerInfo().ok) continue;
      const out = openSync(DOCKERD_LOG, 'a');
      spawn('dockerd', [], { detached: true, stdio: ['ignore', out, out] }).unref();
    } else {
      const until = Date.now() + WAIT_MS;
      let last = dockerInfo();
      while (!last.ok && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 500));
        last = dockerInfo();
      }
      if (!last.ok) throw new Error(`the Docker engine did not answer within ${WAIT_MS / 1000} s (${last.error}); see ${DOCKERD_LOG} or journalctl -u docker`);
      log('the Docker engine answers');
    }
  }
}
