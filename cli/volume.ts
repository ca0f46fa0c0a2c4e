import type { VolumeDto } from '../wire/volumes';
import { CLIENT_OPTIONS_HELP, expectPositionals, parseCommand, UsageError } from './args';
import { createClient, type Client } from './client';
import { loadConnection } from './config';
import { age, groupAction, print, printHelp, printJson, table } from './output';

const ACTIONS = 'list, create or delete';

const VOLUME_USAGE = `Usage: cove volume <command> [options]

Commands:
  list, ls             list volumes
  create NAME          create a volume
  delete, rm NAME|ID   delete a volume no sandbox mounts, and its data

Sandboxes mount volumes with \`cove sandbox create --volume NAME:/path\`. Run "cove volume <command> --help" for options.`;

const HELP: Record<string, string> = {
  list: 'Usage: cove volume list\n\nLists volumes: id, name, state, age.',
  create: 'Usage: cove volume create NAME\n\nCreates a volume (ready when this returns).',
  delete: 'Usage: cove volume delete NAME|ID\n\nDeletes a volume that no sandbox mounts, and its data.',
};

/** The volumes as a table. */
function volumeTable(volumes: VolumeDto[], now = Date.now()): string {
  return table(
    ['ID', 'NAME', 'STATE', 'AGE'],
    volumes.map((v) => [v.id, v.name, v.errorReason ? `${v.state} (${v.errorReason})` : v.state, age(v.createdAt, now)]),
  );
}

/** A volume by id or name. */
async function findVolume(client: Client, target: string): Promise<VolumeDto> {
  const all = await client.api<VolumeDto[]>('/volumes');
  const found = all.find((v) => v.id === target) ?? all.find((v) => v.name === target);
  if (!found) throw new Error(`no volume with the id or name "${target}"`);
  return found;
}

async function run(action: 'list' | 'create' | 'delete', argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, {});
  if (values.help) return printHelp(`${HELP[action]}\n\n${CLIENT_OPTIONS_HELP}`, values.json);
  if (action === 'list') {
    expectPositionals(positionals, []);
    const volumes = await createClient(loadConnection(values)).api<VolumeDto[]>('/volumes');
    return values.json ? printJson(volumes) : print(volumes.length ? volumeTable(volumes) : 'No volumes');
  }
  const [target] = expectPositionals(positionals, [action === 'create' ? 'NAME' : 'NAME|ID']);
  const client = createClient(loadConnection(values));
  if (action === 'create') {
    const volume = await client.api<VolumeDto>('/volumes', { method: 'POST', json: { name: target } });
    return values.json ? printJson(volume) : print(`Created volume ${volume.name} (${volume.id})`);
  }
  const volume = await findVolume(client, target);
  await client.api(`/volumes/${encodeURIComponent(volume.id)}`, { method: 'DELETE' });
  if (values.json) printJson({ deleted: true, id: volume.id, name: volume.name });
  else print(`Deleted volume ${volume.name}`);
}

/** `cove volume …`: the volumes of the control API. */
export async function runVolumeCommand(argv: string[]): Promise<void> {
  const action = groupAction(argv, VOLUME_USAGE, ACTIONS);
  const rest = argv.slice(1);
  switch (action) {
    case undefined:
      return;
    case 'list':
    case 'ls':
      return run('list', rest);
    case 'create':
      return run('create', rest);
    case 'delete':
    case 'rm':
      return run('delete', rest);
    default:
      throw new UsageError(`unknown command "volume ${action}": ${ACTIONS}`);
  }
}
