import os from 'node:os';
import { expectPositionals, parseCommand, UsageError } from './args';
import { createClient } from './client';
import { configPath, DEFAULT_API_URL, normalizeApiUrl, readConfig, writeConfig } from './config';
import { print, printHelp, printJson } from './output';

const LOGIN_USAGE = `Usage: cove login [--api-url URL] [--api-key KEY]

Checks an API key against a Cove server and saves both for the other commands, in the config file
(COVE_CONFIG, else $XDG_CONFIG_HOME/cove/config.json, else ~/.config/cove/config.json; readable by you alone).
Without --api-key the key comes from COVE_API_KEY, else a prompt on a terminal, else stdin.

  --api-url URL   the Cove API (else COVE_API_URL, else the saved one, else ${DEFAULT_API_URL})
  --api-key KEY   the API key (\`cove keys create\` makes one; \`cove serve\` prints the admin key at its first start)
  --json          machine-readable JSON on stdout
  -h, --help      this help`;

const LOGOUT_USAGE = `Usage: cove logout

Removes the saved API key from the config file (the server URL stays).

  --json          machine-readable JSON on stdout
  -h, --help      this help`;

/** Reads a line from the terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(question);
  input.setRawMode(true);
  input.resume();
  return new Promise((resolve, reject) => {
    let line = '';
    const finish = (err?: Error) => {
      input.setRawMode(false);
      input.pause();
      input.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new Error('cancelled'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else if (ch >= ' ') line += ch;
      }
    };
    input.on('data', onData);
  });
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += (chunk as Buffer).toString('utf8');
  return text;
}

/** `cove login`: checks the key with one call (listing a sandbox), then saves URL and key. */
export async function runLogin(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {});
  if (values.help) return printHelp(LOGIN_USAGE, values.json);
  expectPositionals(positionals, []);
  const file = configPath(process.env, os.homedir());
  const stored = readConfig(file);
  const apiUrl = normalizeApiUrl(values['api-url'] ?? process.env.COVE_API_URL ?? stored.apiUrl ?? DEFAULT_API_URL);
  let apiKey = values['api-key'] ?? process.env.COVE_API_KEY;
  if (!apiKey) apiKey = process.stdin.isTTY ? await promptHidden(`API key for ${apiUrl}: `) : await readStdin();
  apiKey = apiKey.trim();
  if (!apiKey) throw new UsageError('no API key given (--api-key, COVE_API_KEY, a prompt or stdin)');

  await createClient({ apiUrl, apiKey }).api('/sandbox', { query: { limit: 1 } });
  writeConfig(file, { ...stored, apiUrl, apiKey });
  if (values.json) printJson({ apiUrl, configPath: file });
  else print(`Logged in to ${apiUrl} (saved in ${file})`);
}

/** `cove logout`: forgets the saved key. */
export function runLogout(argv: string[]): void {
  const { values, positionals } = parseCommand(argv, {});
  if (values.help) return printHelp(LOGOUT_USAGE, values.json);
  expectPositionals(positionals, []);
  const file = configPath(process.env, os.homedir());
  const { apiKey, ...rest } = readConfig(file);
  if (apiKey !== undefined) writeConfig(file, rest);
  if (values.json) printJson({ loggedOut: apiKey !== undefined, configPath: file });
  else print(apiKey !== undefined ? `Removed the saved API key from ${file}` : 'No API key was saved');
}
