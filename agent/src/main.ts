import os from 'node:os';
import { mkdirSync } from 'node:fs';
import { installLastResort } from '../../lib/guard';
import { AGENT_USAGE, readAgentConfig, TOKEN_ENV } from './config';
import { startAgentServer } from './server';
import { createSandboxContext } from './system/context';
import { ensureAccount } from './system/accounts';
import { confineAgent, resolveIdentity } from './system/identity';
import { preferUserCodeForOom } from './system/oom';
import { trustCa } from './system/trust';

/** Printed on stdout once the agent accepts requests; supervisors and tests wait for it. */
const READY_PREFIX = 'cove agent listening on ';

/** `cove agent …`: reads config once, drops the token from the environment, serves until SIGTERM/SIGINT. */
export async function runAgent(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${AGENT_USAGE}\n`);
    return;
  }
  let config;
  let identity;
  try {
    const user = argv.includes('--user') ? argv[argv.indexOf('--user') + 1] : undefined;
    if (user && argv.includes('--create-user')) ensureAccount(user);
    identity = resolveIdentity(user, process.env.HOME);
    config = readAgentConfig(argv, process.env, identity.home || os.homedir());
  } catch (err) {
    process.stderr.write(`cove agent: ${(err as Error).message}\n\n${AGENT_USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  // One bad request or child must not take every sandbox process down with the agent; reaching this is a bug.
  installLastResort('cove agent');
  delete process.env[TOKEN_ENV];
  try {
    confineAgent(identity);
  } catch (err) {
    process.stderr.write(`cove agent: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  if (process.pid === 1) {
    process.stderr.write('cove agent: running as PID 1 without an init: orphaned processes will not be reaped; run the container with --init (Cove does)\n');
  }
  mkdirSync(config.workdir, { recursive: true });
  process.chdir(config.workdir);

  // User code, not the agent, is what the kernel's OOM killer takes first (system/oom.ts).
  preferUserCodeForOom();
  if (config.trustCa) {
    // A sandbox whose CA cannot be installed still runs; only its intercepted HTTPS would fail verification.
    try {
      Object.assign(process.env, trustCa(config.trustCa));
    } catch (err) {
      process.stderr.write(`cove agent: could not trust the CA in ${config.trustCa}: ${(err as Error).message}\n`);
    }
  }
  const ctx = createSandboxContext({ workdir: config.workdir, identity, env: process.env });
  let authorized!: () => void;
  const firstRequest = new Promise<void>((resolve) => (authorized = resolve));
  const running = await startAgentServer({ host: config.host, port: config.port, token: config.token, ctx, onFirstAuthorized: () => authorized() });
  process.stdout.write(`${READY_PREFIX}${running.url}\n`);
  // After the ready line, not before: a cold start waits for that line, a pool member has seconds before its claim.
  void running.agent.warm().catch((err: Error) => process.stderr.write(`cove agent: warming up failed: ${err.message}\n`));

  if (config.entrypoint) {
    // Held until whoever started the agent has made the sandbox ready for user code (Cove's proxy arms the sandbox's
    // egress firewall, then asks the agent for its version).
    if (config.holdEntrypoint) await firstRequest;
    const sessions = running.agent.services.sessions;
    sessions.create('entrypoint');
    await sessions.execute('entrypoint', { command: config.entrypoint, runAsync: true });
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    // Forward the signal to everything the agent runs, give it a moment to exit, then stop serving.
    void running.close().finally(() => process.exit(signal === 'SIGTERM' ? 0 : 130));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
