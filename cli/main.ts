const USAGE = `Usage: cove <command> [options]

Server:
  serve     run the Cove server: control API, toolbox forwarding, warm pool (builds missing images first)
  keys      create, list and revoke API keys
  images    build the agent bundle and the default sandbox images
  agent     run the guest agent (inside a sandbox, or alone for development)

Client (of a Cove server: \`cove login\` first, or COVE_API_URL and COVE_API_KEY):
  login     check an API key and save it with the server's URL; logout forgets it
  sandbox   create, list, info, start, stop, delete sandboxes
  exec      run a command in a sandbox, attached to this terminal (stdin, stdout, stderr, signals, exit code)
  cp        copy files and folders between this machine and a sandbox (ID:/path)
  ssh       open an SSH session in a sandbox (the system's ssh with a fresh token)
  preview   the preview URL and token of a sandbox's port
  logs      the output of a session's commands (--follow streams it)
  snapshot  list, create, delete snapshots
  volume    list, create, delete volumes

Every client command takes --json (machine-readable output on stdout) and --help.
Run "cove <command> --help" for a command's options.`;

// Each command loads only its own code: `cove agent` must not pay for the server's modules, nor the client's.
async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent':
      return (await import('../agent/src/main')).runAgent(rest);
    case 'serve':
      return (await import('../proxy/src/main')).runServe(rest);
    case 'keys':
      return (await import('../proxy/src/auth/keys-cli')).runKeysCommand(rest);
    case 'images':
      return (await import('../images/src/cli')).runImagesCommand(rest);
    case 'login':
      return (await import('./login')).runLogin(rest);
    case 'logout':
      return (await import('./login')).runLogout(rest);
    case 'sandbox':
    case 'sandboxes':
      return (await import('./sandbox')).runSandboxCommand(rest);
    case 'exec':
      return (await import('./exec')).runExecCommand(rest);
    case 'cp':
      return (await import('./cp')).runCpCommand(rest);
    case 'ssh':
      return (await import('./ssh')).runSshCommand(rest);
    case 'preview':
      return (await import('./preview')).runPreviewCommand(rest);
    case 'logs':
      return (await import('./logs')).runLogsCommand(rest);
    case 'snapshot':
    case 'snapshots':
      return (await import('./snapshot')).runSnapshotCommand(rest);
    case 'volume':
    case 'volumes':
      return (await import('./volume')).runVolumeCommand(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      process.stderr.write(`cove: unknown command "${command}"\n\n${USAGE}\n`);
      process.exitCode = 2;
  }
}

/** Whether --json was asked for (before any `--`, after which the arguments belong to a command in the sandbox). */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

const argv = process.argv.slice(2);
main(argv).catch(async (err: unknown) => {
  const [{ isUsageError }, { reportError }] = await Promise.all([import('./args'), import('./output')]);
  const usage = isUsageError(err);
  reportError(err, wantsJson(argv));
  if (usage && !wantsJson(argv)) {
    const group = ['sandbox', 'snapshot', 'volume'].includes(argv[0]) && argv[1] && !argv[1].startsWith('-') ? `${argv[0]} ${argv[1]}` : argv[0];
    process.stderr.write(`Run "cove ${group} --help" for its options.\n`);
  }
  process.exit(usage ? 2 : 1);
});
