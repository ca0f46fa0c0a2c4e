import { StringDecoder } from 'node:string_decoder';
import type { Session, SessionCommand, SessionCommandLogs } from '../wire/sessions';
import { LOGS_END_CLOSE_CODE, STDERR_PREFIX, STDOUT_PREFIX } from '../wire/sessions';
import { CLIENT_OPTIONS_HELP, expectPositionals, parseCommand } from './args';
import { createClient, type Client } from './client';
import { loadConnection } from './config';
import { print, printHelp, printJson } from './output';

const LOGS_USAGE = `Usage: cove logs ID SESSION [COMMAND_ID] [--follow]

Prints the output of a command run in a session of a sandbox (stdout to stdout, stderr to stderr), or of every
command of the session in order, each under a "$ command" line. --json prints {id, command, exitCode, stdout,
stderr, output} (a list without COMMAND_ID).

  -f, --follow    stream the output live until the command ends (--json: one JSON object per line,
                  {"command", "stream", "data"} for output and {"command", "exitCode"} at its end)
${CLIENT_OPTIONS_HELP}`;

type Stream = 'stdout' | 'stderr';

/** The stream and bytes of one frame of the follow WebSocket (a 3-byte prefix names the stream). */
export function demuxFrame(frame: Buffer): { stream: Stream; data: Buffer } {
  if (frame.subarray(0, 3).equals(STDERR_PREFIX)) return { stream: 'stderr', data: frame.subarray(3) };
  if (frame.subarray(0, 3).equals(STDOUT_PREFIX)) return { stream: 'stdout', data: frame.subarray(3) };
  return { stream: 'stdout', data: frame };
}

/** Follows one command's output until it ends; each chunk goes to `onChunk`. */
async function follow(client: Client, url: string, onChunk: (stream: Stream, data: Buffer) => void): Promise<void> {
  const ws = await client.openSocket(`${url}?follow=true`, (data) => {
    const { stream, data: bytes } = demuxFrame(data);
    onChunk(stream, bytes);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.once('close', (code, reason) => {
      if (code === LOGS_END_CLOSE_CODE) resolve();
      else reject(new Error(`the log stream ended early (${code}${reason.length ? ` ${reason.toString()}` : ''})`));
    });
  });
}

/** `cove logs`: a session command's output, or every command's of the session. */
export async function runLogsCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, { follow: { type: 'boolean', short: 'f' } });
  if (values.help) return printHelp(LOGS_USAGE, values.json);
  const [sandbox, session, commandId] = expectPositionals(positionals, ['ID', 'SESSION', 'COMMAND_ID'], 1);
  const client = createClient(loadConnection(values));
  const { base } = await client.toolbox(sandbox);
  const sessionUrl = `${base}/process/session/${encodeURIComponent(session)}`;
  const commandUrl = (id: string) => `${sessionUrl}/command/${encodeURIComponent(id)}`;
  const commands = commandId ? [await client.json<SessionCommand>(commandUrl(commandId))] : (await client.json<Session>(sessionUrl)).commands;
  const headers = !commandId;

  if (values.follow) {
    for (const command of commands) {
      if (headers && !values.json) print(`$ ${command.command}`);
      const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
      await follow(client, `${commandUrl(command.id)}/logs`, (stream, data) => {
        if (!values.json) return void process[stream].write(data);
        const text = decoders[stream].write(data);
        if (text) process.stdout.write(`${JSON.stringify({ command: command.id, stream, data: text })}\n`);
      });
      if (values.json) {
        for (const stream of ['stdout', 'stderr'] as const) {
          const rest = decoders[stream].end();
          if (rest) process.stdout.write(`${JSON.stringify({ command: command.id, stream, data: rest })}\n`);
        }
        const ended = await client.json<SessionCommand>(commandUrl(command.id));
        process.stdout.write(`${JSON.stringify({ command: command.id, exitCode: ended.exitCode ?? null })}\n`);
      }
    }
    return;
  }

  const entries = [];
  for (const command of commands) {
    const logs = await client.json<SessionCommandLogs>(`${commandUrl(command.id)}/logs`);
    entries.push({ id: command.id, command: command.command, exitCode: command.exitCode ?? null, ...logs });
  }
  if (values.json) return printJson(commandId ? entries[0] : entries);
  for (const entry of entries) {
    if (headers) print(`$ ${entry.command}${entry.exitCode === null ? '' : `  (exit ${entry.exitCode})`}`);
    process.stdout.write(entry.stdout);
    process.stderr.write(entry.stderr);
  }
}
