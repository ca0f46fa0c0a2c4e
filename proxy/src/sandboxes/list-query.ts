import { CoveError } from '../../../lib/errors';
import type { ListSandboxesQuery } from '../../../wire/sandbox';
import type { SandboxRecord } from './repo';

/** Fields `GET /sandbox` sorts by (Daytona's names), and how to read each from a record. */
const SORT_FIELDS = {
  name: (r: SandboxRecord) => r.name.toLowerCase(),
  cpu: (r: SandboxRecord) => r.cpu,
  memoryGib: (r: SandboxRecord) => r.memory,
  diskGib: (r: SandboxRecord) => r.disk,
  lastActivityAt: (r: SandboxRecord) => r.lastActivityAt,
  createdAt: (r: SandboxRecord) => r.createdAt,
} as const;

/** Where the previous page ended: the sort value and id of its last item (opaque to clients). */
interface Cursor {
  /** The sort field and direction the cursor belongs to. */
  s: string;
  v: string | number;
  id: string;
}

const encodeCursor = (c: Cursor): string => Buffer.from(JSON.stringify(c)).toString('base64url');

function decodeCursor(text: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Cursor;
    if (c && typeof c.s === 'string' && typeof c.id === 'string' && (typeof c.v === 'string' || typeof c.v === 'number')) return c;
  } catch {
    /* below */
  }
  throw new CoveError('INVALID_REQUEST', 'Invalid cursor: pass the nextCursor of the previous page unchanged');
}

/** A query value that may be repeated or comma-separated, as a list. */
const listOf = (v: string | string[] | undefined): string[] | undefined =>
  v === undefined ? undefined : ([] as string[]).concat(v).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);

function dateOf(name: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new CoveError('INVALID_REQUEST', `${name} must be a date (ISO 8601), not ${JSON.stringify(text.slice(0, 40))}`);
  return new Date(t).toISOString();
}

/**
 * Daytona's sandbox search over records (pure): id and name prefixes (case-insensitive), labels (all given must
 * match), states, snapshots (`snapshots`: a snapshot's name or an image), targets, resource ranges, public, recoverable, creation and activity time
 * ranges; sorted by `sort` (default lastActivityAt) in `order` (default desc), ties broken by id; a page of `limit`
 * after `cursor`, with the cursor of the next page or null.
 */
export function searchSandboxes(records: SandboxRecord[], query: Partial<ListSandboxesQuery> & { target: string }): { items: SandboxRecord[]; nextCursor: string | null } {
  let labels: Record<string, string> = {};
  if (query.labels) {
    try {
      labels = JSON.parse(query.labels) as Record<string, string>;
    } catch {
      throw new CoveError('INVALID_REQUEST', 'labels must be a JSON object of label names to values');
    }
    if (!labels || typeof labels !== 'object' || Array.isArray(labels)) throw new CoveError('INVALID_REQUEST', 'labels must be a JSON object of label names to values');
  }
  const states = listOf(query.states);
  const snapshots = listOf(query.snapshots);
  const targets = listOf(query.regionIds);
  const idPrefix = query.id?.toLowerCase();
  const namePrefix = query.name?.toLowerCase();
  const created = [dateOf('createdAtAfter', query.createdAtAfter), dateOf('createdAtBefore', query.createdAtBefore)];
  const active = [dateOf('lastEventAfter', query.lastEventAfter), dateOf('lastEventBefore', query.lastEventBefore)];
  const within = (value: number, min?: number, max?: number) => (min === undefined || value >= min) && (max === undefined || value <= max);
  const between = (value: string, [after, before]: (string | undefined)[]) => (!after || value > after) && (!before || value < before);

  const matching = records.filter(
    (r) =>
      (!idPrefix || r.id.toLowerCase().startsWith(idPrefix)) &&
      (!namePrefix || r.name.toLowerCase().startsWith(namePrefix)) &&
      Object.entries(labels).every(([k, v]) => r.labels[k] === v) &&
      (!states || states.includes(r.state)) &&
      (!snapshots || snapshots.includes(r.snapshot ?? r.image) || snapshots.includes(r.image)) &&
      (!targets || targets.includes(query.target)) &&
      within(r.cpu, query.minCpu, query.maxCpu) &&
      within(r.memory, query.minMemoryGiB, query.maxMemoryGiB) &&
      within(r.disk, query.minDiskGiB, query.maxDiskGiB) &&
      within(0, query.minGpu, query.maxGpu) &&
      (query.isPublic === undefined || r.public === query.isPublic) &&
      // No Cove sandbox is recoverable (an errored one is recreated by starting it).
      (query.isRecoverable === undefined || query.isRecoverable === false) &&
      between(r.createdAt, created) &&
      between(r.lastActivityAt, active),
  );

  const field = query.sort ?? 'lastActivityAt';
  const desc = (query.order ?? 'desc') === 'desc';
  const key = SORT_FIELDS[field];
  const sorting = `${field} ${desc ? 'desc' : 'asc'}`;
  const compare = (av: string | number, aid: string, bv: string | number, bid: string): number => {
    const byValue = av < bv ? -1 : av > bv ? 1 : 0;
    const c = byValue || (aid < bid ? -1 : aid > bid ? 1 : 0);
    return desc ? -c : c;
  };
  matching.sort((a, b) => compare(key(a), a.id, key(b), b.id));

  let start = 0;
  if (query.cursor) {
    const cursor = decodeCursor(query.cursor);
    if (cursor.s !== sorting) throw new CoveError('INVALID_REQUEST', `Invalid cursor: it belongs to a listing sorted by ${cursor.s.slice(0, 40)}, not ${sorting}`);
    start = matching.findIndex((r) => compare(key(r), r.id, cursor.v, cursor.id) > 0);
    if (start < 0) start = matching.length;
  }
  const limit = query.limit ?? 100;
  const items = matching.slice(start, start + limit);
  const last = items.at(-1);
  const more = start + limit < matching.length;
  return { items, nextCursor: more && last ? encodeCursor({ s: sorting, v: key(last), id: last.id }) : null };
}
