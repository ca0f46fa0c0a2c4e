import { setTimeout as sleep } from 'node:timers/promises';
import type { CreateSandboxRequest, ListSandboxesResponse, SandboxDto, SandboxState } from '../wire/sandbox';
import type { SandboxVolume } from '../wire/volumes';
import { CLIENT_OPTIONS_HELP, expectPositionals, parseAssignments, parseCommand, parseWholeNumber, UsageError } from './args';
import { createClient, type Client } from './client';
import { loadConnection } from './config';
import { age, groupAction, print, printHelp, printJson, table } from './output';

const SANDBOX_USAGE = `Usage: cove sandbox <command> [options]

Commands:
  create            create a sandbox, wait until it is started, print its id
  list, ls          list sandboxes
  info ID           a sandbox's details
  start ID          start a stopped, paused or archived sandbox and wait until it is started
  stop ID           stop a sandbox (its files are kept) and wait until it is stopped
  delete, rm ID     delete a sandbox and its files

ID is a sandbox's id or name. Run "cove sandbox <command> --help" for a command's options.`;

const CREATE_USAGE = `Usage: cove sandbox create [options]

Creates a sandbox, waits until it is started and prints its id (--json: the sandbox).

  --image IMAGE        the image to run (default: the server's default image)
  --snapshot NAME      a snapshot to run (see cove snapshot list)
  --name NAME          a name, unique among your sandboxes (default: its id)
  --cpu N              vCPUs
  --memory GIB         memory in GiB
  --disk GIB           disk in GiB
  -e, --env NAME=VALUE environment variable (repeatable)
  --label KEY=VALUE    label (repeatable)
  --auto-stop MIN      stop after this many idle minutes (0: never)
  --public             previews open without a token
  --volume VOL:PATH    mount a volume (id or name) at PATH (repeatable)
  --timeout S          how long to wait until it is started (default 600)
${CLIENT_OPTIONS_HELP}`;

const LIST_USAGE = `Usage: cove sandbox list [--label KEY=VALUE]... [--state STATE]...

Lists your sandboxes (an admin key: every key's): id, name, state, image, cpu/memory/disk, age.

  --label KEY=VALUE    only sandboxes with this label (repeatable)
  --state STATE        only sandboxes in this state (repeatable)
${CLIENT_OPTIONS_HELP}`;

const ONE_USAGE: Record<string, string> = {
  info: "Usage: cove sandbox info ID\n\nShows a sandbox's details.",
  start: 'Usage: cove sandbox start ID [--timeout S]\n\nStarts a stopped, paused or archived sandbox and waits until it is started.\n\n  --timeout S          how long to wait (default 600)',
  stop: 'Usage: cove sandbox stop ID [--force] [--timeout S]\n\nStops a sandbox (its files are kept) and waits until it is stopped.\n\n  --force              kill its processes at once instead of asking them to end\n  --timeout S          how long to wait (default 600)',
  delete: 'Usage: cove sandbox delete ID\n\nDeletes a sandbox, its container and its files.',
};

const ACTIONS = 'create, list, info, start, stop or delete';

/** States a wait ends in without reaching its goal. */
const FAILED: SandboxState[] = ['error', 'build_failed', 'destroyed', 'destroying'];

/** Polls a sandbox until it is in `goal`; a failed state or the deadline is an error saying why. */
async function waitForState(client: Client, sandbox: SandboxDto, goal: SandboxState, timeoutS: number): Promise<SandboxDto> {
  const deadline = Date.now() + timeoutS * 1000;
  let current = sandbox;
  for (;;) {
    if (current.state === goal) return current;
    if (FAILED.includes(current.state)) {
      throw new Error(`sandbox ${current.id} is ${current.state}${current.errorReason ? `: ${current.errorReason}` : ''}`);
    }
    if (Date.now() > deadline) throw new Error(`sandbox ${current.id} is still ${current.state} after ${timeoutS} s`);
    await sleep(500);
    current = await client.api<SandboxDto>(`/sandbox/${encodeURIComponent(current.id)}`);
  }
}

/** `VOLUME:/mount/path` of --volume. */
export function parseVolume(spec: string): SandboxVolume {
  const colon = spec.indexOf(':');
  const volumeId = spec.slice(0, colon);
  const mountPath = spec.slice(colon + 1);
  if (colon < 1 || !mountPath.startsWith('/')) throw new UsageError(`--volume wants VOLUME:/PATH, got "${spec}"`);
  return { volumeId, mountPath };
}

/** cpu/memory/disk in one cell: `2/4G/10G`. */
const resources = (s: SandboxDto) => `${s.cpu}/${s.memory}G/${s.disk}G`;

/** The list as a table. */
export function sandboxTable(sandboxes: SandboxDto[], now = Date.now()): string {
  return table(
    ['ID', 'NAME', 'STATE', 'IMAGE', 'CPU/MEM/DISK', 'AGE'],
    sandboxes.map((s) => [s.id, s.name === s.id ? '-' : s.name, s.state, s.snapshot, resources(s), age(s.createdAt, now)]),
  );
}

function details(s: SandboxDto): string {
  const map = (m: Record<string, string>) => Object.entries(m).map(([k, v]) => `${k}=${v}`).join(', ') || '-';
  const rows: [string, string][] = [
    ['ID', s.id],
    ['Name', s.name],
    ['State', s.errorReason ? `${s.state} (${s.errorReason})` : s.state],
    ['Image', s.snapshot],
    ['Resources', `${s.cpu} vCPU, ${s.memory} GiB memory, ${s.disk} GiB disk`],
    ['User', s.user],
    ['Public', s.public ? 'yes' : 'no'],
    ['Labels', map(s.labels)],
    ['Env', Object.keys(s.env).join(', ') || '-'],
    ['Auto-stop', s.autoStopInterval ? `${s.autoStopInterval} min` : 'off'],
    ['Created', `${s.createdAt} (${age(s.createdAt)} ago)`],
    ['Last activity', s.lastActivityAt],
    ['Toolbox', `${s.toolboxProxyUrl}/${s.id}`],
  ];
  if (s.volumes?.length) rows.push(['Volumes', s.volumes.map((v) => `${v.volumeId}:${v.mountPath}`).join(', ')]);
  return rows.map(([k, v]) => `${`${k}:`.padEnd(15)}${v}`).join('\n');
}

async function create(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {
    image: { type: 'string' },
    snapshot: { type: 'string' },
    name: { type: 'string' },
    cpu: { type: 'string' },
    memory: { type: 'string' },
    disk: { type: 'string' },
    env: { type: 'string', short: 'e', multiple: true },
    label: { type: 'string', multiple: true },
    'auto-stop': { type: 'string' },
    public: { type: 'boolean' },
    volume: { type: 'string', multiple: true },
    timeout: { type: 'string' },
  });
  if (values.help) return printHelp(CREATE_USAGE, values.json);
  expectPositionals(positionals, []);
  if (values.image && values.snapshot) throw new UsageError('give --image or --snapshot, not both');
  const body: CreateSandboxRequest = {
    ...(values.name ? { name: values.name } : {}),
    ...(values.image ? { image: values.image } : {}),
    ...(values.snapshot ? { snapshot: values.snapshot } : {}),
    cpu: parseWholeNumber(values.cpu, '--cpu', 1),
    memory: parseWholeNumber(values.memory, '--memory', 1),
    disk: parseWholeNumber(values.disk, '--disk', 1),
    autoStopInterval: parseWholeNumber(values['auto-stop'], '--auto-stop', 0),
    ...(values.env ? { env: parseAssignments(values.env, '--env') } : {}),
    ...(values.label ? { labels: parseAssignments(values.label, '--label') } : {}),
    ...(values.public ? { public: true } : {}),
    ...(values.volume ? { volumes: values.volume.map(parseVolume) } : {}),
  };
  const timeout = parseWholeNumber(values.timeout, '--timeout', 1) ?? 600;
  const client = createClient(loadConnection(values));
  const created = await client.api<SandboxDto>('/sandbox', { method: 'POST', json: body });
  const started = await waitForState(client, created, 'started', timeout);
  if (values.json) printJson(started);
  else print(started.id);
}

async function list(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, { label: { type: 'string', multiple: true }, state: { type: 'string', multiple: true } });
  if (values.help) return printHelp(LIST_USAGE, values.json);
  expectPositionals(positionals, []);
  const labels = values.label ? JSON.stringify(parseAssignments(values.label, '--label')) : undefined;
  const client = createClient(loadConnection(values));
  const all: SandboxDto[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.api<ListSandboxesResponse>('/sandbox', { query: { limit: 1000, cursor, labels, states: values.state?.join(',') } });
    all.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  if (values.json) printJson(all);
  else print(all.length ? sandboxTable(all) : 'No sandboxes');
}

async function one(action: 'info' | 'start' | 'stop' | 'delete', argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {
    ...(action === 'stop' ? { force: { type: 'boolean' } } : {}),
    ...(action === 'start' || action === 'stop' ? { timeout: { type: 'string' } } : {}),
  } as const);
  if (values.help) return printHelp(`${ONE_USAGE[action]}\n\n${CLIENT_OPTIONS_HELP}`, values.json);
  const [sandbox] = expectPositionals(positionals, ['ID']);
  const timeout = parseWholeNumber(values.timeout as string | undefined, '--timeout', 1) ?? 600;
  const client = createClient(loadConnection(values));
  const path = `/sandbox/${encodeURIComponent(sandbox)}`;
  let result: SandboxDto;
  if (action === 'info') {
    result = await client.api<SandboxDto>(path);
    return values.json ? printJson(result) : print(details(result));
  }
  if (action === 'delete') {
    result = await client.api<SandboxDto>(path, { method: 'DELETE' });
    return values.json ? printJson(result) : print(`Deleted ${result.id}`);
  }
  const goal = action === 'start' ? 'started' : 'stopped';
  const answer = await client.api<SandboxDto>(`${path}/${action}`, { method: 'POST', query: { force: values.force ? true : undefined } });
  result = await waitForState(client, answer, goal, timeout);
  if (values.json) printJson(result);
  else print(`${action === 'start' ? 'Started' : 'Stopped'} ${result.id}`);
}

/** `cove sandbox …`: create, list, inspect, start, stop and delete sandboxes through the control API. */
export async function runSandboxCommand(argv: string[]): Promise<void> {
  const action = groupAction(argv, SANDBOX_USAGE, ACTIONS);
  const rest = argv.slice(1);
  switch (action) {
    case 'create':
      return create(rest);
    case 'list':
    case 'ls':
      return list(rest);
    case 'info':
    case 'start':
    case 'stop':
      return one(action, rest);
    case 'delete':
    case 'rm':
      return one('delete', rest);
    case undefined:
      return;
    default:
      throw new UsageError(`unknown command "sandbox ${action}": ${ACTIONS}`);
  }
}
