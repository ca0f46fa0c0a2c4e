// Entry of the agent bundle that runs inside sandboxes: the agent alone, without the server's modules.
// Accepts the same arguments as `cove agent` (a leading "agent" is allowed).
import { runAgent } from './main';

const args = process.argv.slice(2);
runAgent(args[0] === 'agent' ? args.slice(1) : args).catch((err) => {
  process.stderr.write(`cove agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
