import { setTimeout as sleep } from 'node:timers/promises';
import type { CreateSnapshotRequest, PaginatedSnapshots, SnapshotDto } from '../wire/snapshots';
import { CLIENT_OPTIONS_HELP, expectPositionals, parseCommand, parseWholeNumber, UsageError } from './args';
import { createClient } from './client';
import { loadConnection } from './config';
import { age, groupAction, print, printHelp, printJson, table } from './output';

const ACTIONS = 'list, create or delete';

const SNAPSHOT_USAGE = `Usage: cove snapshot <command> [options]

Commands:
  list, ls                     list the snapshots you can run (the server's default image among them)
  create NAME --image IMAGE    make a snapshot of an image and wait until it is active
  delete, rm NAME|ID           delete a snapshot (sandboxes made from it keep running)

A snapshot is what \`cove sandbox create --snapshot NAME\` runs. Run "cove snapshot <command> --help" for options.`;

const CREATE_USAGE = `Usage: cove snapshot create NAME --image IMAGE [--cpu N] [--memory GIB] [--disk GIB] [--timeout S]

Makes a snapshot of an image (used as it is when it is on the server's host, else pulled) and waits until it is
active.

  --image IMAGE   the image
  --cpu N, --memory GIB, --disk GIB
                  the resources of every sandbox made from it
  --timeout S     how long to wait until it is active (default 600)
${CLIENT_OPTIONS_HELP}`;

const LIST_USAGE = `Usage: cove snapshot list\n\nLists the snapshots this API key sees: name, state, image, cpu/memory/disk, age.\n\n${CLIENT_OPTIONS_HELP}`;
const DELETE_USAGE = `Usage: cove snapshot delete NAME|ID\n\nDeletes a snapshot; sandboxes made from it keep running.\n\n${CLIENT_OPTIONS_HELP}`;

/** States in which a snapshot is still being made. */
const MAKING = new Set(['pending', 'pulling', 'building']);

/** The snapshots as a table. */
function snapshotTable(snapshots: SnapshotDto[], now = Date.now()): string {
  return table(
    ['NAME', 'STATE', 'IMAGE', 'CPU/MEM/DISK', 'AGE'],
    snapshots.map((s) => [s.general ? `${s.name} (default)` : s.name, s.state, s.imageName, `${s.cpu}/${s.mem}G/${s.disk}G`, age(s.createdAt, now)]),
  );
}

async function list(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {});
  if (values.help) return printHelp(LIST_USAGE, values.json);
  expectPositionals(positionals, []);
  const client = createClient(loadConnection(values));
  const all: SnapshotDto[] = [];
  for (let page = 1; ; page++) {
    const answer = await client.api<PaginatedSnapshots>('/snapshots', { query: { page, limit: 200 } });
    all.push(...answer.items);
    if (page >= answer.totalPages || answer.items.length === 0) break;
  }
  if (values.json) printJson(all);
  else print(all.length ? snapshotTable(all) : 'No snapshots');
}

async function create(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {
    image: { type: 'string' },
    cpu: { type: 'string' },
    memory: { type: 'string' },
    disk: { type: 'string' },
    timeout: { type: 'string' },
  });
  if (values.help) return printHelp(CREATE_USAGE, values.json);
  const [name] = expectPositionals(positionals, ['NAME']);
  if (!values.image) throw new UsageError('missing --image IMAGE');
  const body: CreateSnapshotRequest = {
    name,
    imageName: values.image,
    cpu: parseWholeNumber(values.cpu, '--cpu', 1),
    memory: parseWholeNumber(values.memory, '--memory', 1),
    disk: parseWholeNumber(values.disk, '--disk', 1),
  };
  const timeout = parseWholeNumber(values.timeout, '--timeout', 1) ?? 600;
  const client = createClient(loadConnection(values));
  let snapshot = await client.api<SnapshotDto>('/snapshots', { method: 'POST', json: body });
  const deadline = Date.now() + timeout * 1000;
  while (MAKING.has(snapshot.state)) {
    if (Date.now() > deadline) throw new Error(`snapshot ${snapshot.name} is still ${snapshot.state} after ${timeout} s`);
    await sleep(500);
    snapshot = await client.api<SnapshotDto>(`/snapshots/${encodeURIComponent(snapshot.id)}`);
  }
  if (snapshot.state !== 'active') throw new Error(`snapshot ${snapshot.name} is ${snapshot.state}${snapshot.errorReason ? `: ${snapshot.errorReason}` : ''}`);
  if (values.json) printJson(snapshot);
  else print(`Created snapshot ${snapshot.name} (${snapshot.id})`);
}

async function remove(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {});
  if (values.help) return printHelp(DELETE_USAGE, values.json);
  const [target] = expectPositionals(positionals, ['NAME|ID']);
  const client = createClient(loadConnection(values));
  const snapshot = await client.api<SnapshotDto>(`/snapshots/${encodeURIComponent(target)}`);
  await client.api(`/snapshots/${encodeURIComponent(snapshot.id)}`, { method: 'DELETE' });
  if (values.json) printJson({ deleted: true, id: snapshot.id, name: snapshot.name });
  else print(`Deleted snapshot ${snapshot.name}`);
}

/** `cove snapshot …`: the snapshots of the control API. */
export async function runSnapshotCommand(argv: string[]): Promise<void> {
  const action = groupAction(argv, SNAPSHOT_USAGE, ACTIONS);
  const rest = argv.slice(1);
  switch (action) {
    case undefined:
      return;
    case 'list':
    case 'ls':
      return list(rest);
    case 'create':
      return create(rest);
    case 'delete':
    case 'rm':
      return remove(rest);
    default:
      throw new UsageError(`unknown command "snapshot ${action}": ${ACTIONS}`);
  }
}
