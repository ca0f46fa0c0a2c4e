const USAGE = `Usage: cove <command> [options]

Commands:
  serve     run the Cove server: control API, toolbox forwarding, warm pool (builds missing images first)
  keys      create, list and revoke API keys
  exec      run a command in a sandbox, attached to this terminal (stdin, stdout, stderr, signals, exit code)
  images    build the agent bundle and the default sandbox images
  agent     run the guest agent (inside a sandbox, or alone for development)

Run "cove <command> --help" for a command's options.`;

// Each command loads only its own code: `cove agent` must not pay for the server's modules.
async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent':
      return (await import('../agent/src/main')).runAgent(rest);
    case 'serve':
      return (await import('../proxy/src/main')).runServe(rest);
    case 'exec':
      return (await import('./exec')).runExecCommand(rest);
    case 'keys':
      return (await import('../proxy/src/auth/keys-cli')).runKeysCommand(rest);
    case 'images':
      return (await import('../images/src/cli')).runImagesCommand(rest);
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

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`cove: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
