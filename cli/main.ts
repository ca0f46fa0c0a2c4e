import { runAgent } from '../agent/src/main';

const USAGE = `Usage: cove <command> [options]

Commands:
  agent     run the guest agent (inside a sandbox, or alone for development)

Run "cove <command> --help" for a command's options.`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent':
      return runAgent(rest);
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
