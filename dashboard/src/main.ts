// Cove's web dashboard: sign in with an API key, see and manage sandboxes, and per sandbox a terminal, its files, preview
// links and an SSH command. Plain DOM over the page in index.html; every call carries the key in a header (api.ts).
import type { CreateSandboxRequest } from '../../wire/sandbox';
import { ApiError, createApi, type Api, type Sandbox } from './api';
import { announce, byId, copyText, el, messageOf, relativeTime } from './dom';
import { createFilesView, type FilesView } from './files';
import { createTerminalView, type TerminalState, type TerminalView } from './terminal';

/** The API key lives in this tab's sessionStorage only: gone when the tab closes, never in a URL. */
const KEY_STORAGE = 'cove.apiKey';
/** Whether the terminal runs in xterm.js's screen reader mode. */
const SCREEN_READER_STORAGE = 'cove-dashboard.screenReader';
/** How often the sandbox list is read again while the page is visible. */
const POLL_MS = 3000;
const TABS = ['terminal', 'files', 'preview', 'ssh'] as const;
type Tab = (typeof TABS)[number];

/** States in which each lifecycle action makes sense (the server says why otherwise). */
const CAN_START = new Set(['stopped', 'archived', 'paused']);
const CAN_STOP = new Set(['started']);
const CANNOT_DELETE = new Set(['destroying', 'destroyed']);

interface Row {
  tr: HTMLTableRowElement;
  open: HTMLButtonElement;
  id: HTMLElement;
  state: HTMLElement;
  image: HTMLElement;
  resources: HTMLElement;
  labels: HTMLElement;
  age: HTMLTimeElement;
  activity: HTMLTimeElement;
  start: HTMLButtonElement;
  stop: HTMLButtonElement;
  remove: HTMLButtonElement;
}

let api: Api | undefined;
let sandboxes: Sandbox[] = [];
const rows = new Map<string, Row>();
let selected: { id: string; tab: Tab } | undefined;
let terminal: TerminalView | undefined;
let files: FilesView;
let pollTimer: ReturnType<typeof setTimeout> | undefined;
/** Actions under way, by sandbox id, so their buttons stay disabled until the list shows the outcome. */
const busy = new Set<string>();

const setText = (node: HTMLElement, text: string) => {
  if (node.textContent !== text) node.textContent = text;
};

// ── Signing in and out ─────────────────────────────────────────────────────────────────────────────────────────

function showSignIn(message = ''): void {
  byId('app').hidden = true;
  byId('sign-out').hidden = true;
  byId('sign-in').hidden = false;
  byId('sign-in-error').textContent = message;
  byId<HTMLInputElement>('api-key').focus();
}

/** Uses a key: the first list proves it works; a refused key sends the user back to the sign-in form. */
async function signIn(key: string): Promise<void> {
  const client = createApi(key, (error) => signOut(`Cove refused the API key: ${error.message}`));
  sandboxes = await client.list();
  sessionStorage.setItem(KEY_STORAGE, key);
  api = client;
  byId('sign-in').hidden = true;
  byId('app').hidden = false;
  byId('sign-out').hidden = false;
  renderList();
  const route = routeFromHash();
  if (route && sandboxes.some((s) => s.id === route.id)) select(route.id, route.tab, false);
  schedulePoll();
}

function signOut(message = ''): void {
  clearTimeout(pollTimer);
  closeDetail();
  api = undefined;
  sandboxes = [];
  rows.clear();
  byId<HTMLTableElement>('sandboxes').tBodies[0].replaceChildren();
  // Everything the dashboard kept in this tab: the key and the remembered terminal sessions.
  for (const key of Object.keys(sessionStorage)) if (key.startsWith('cove.')) sessionStorage.removeItem(key);
  showSignIn(message);
}

// ── The sandbox list ───────────────────────────────────────────────────────────────────────────────────────────

async function refresh(): Promise<void> {
  if (!api) return;
  try {
    sandboxes = await api.list();
    renderList();
    renderDetail();
    setText(byId('list-note'), `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (api) setText(byId('list-note'), `could not update: ${messageOf(err)}`);
  }
}

function schedulePoll(): void {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(() => {
    const next = () => api && schedulePoll();
    if (document.hidden) next();
    else void refresh().finally(next);
  }, POLL_MS);
}

function createRow(id: string): Row {
  const button = (text: string, cls: string, action: () => void) => {
    const b = el('button', { type: 'button', class: cls }, text);
    b.addEventListener('click', action);
    return b;
  };
  const row: Row = {
    tr: el('tr', { 'data-id': id }),
    open: button('', 'link', () => select(id, selected?.tab ?? 'terminal', true)),
    id: el('code', { class: 'muted small' }),
    state: el('span', { class: 'state' }),
    image: el('span'),
    resources: el('span'),
    labels: el('span', { class: 'labels' }),
    age: el('time'),
    activity: el('time'),
    start: button('Start', 'secondary', () => void act(id, 'start')),
    stop: button('Stop', 'secondary', () => void act(id, 'stop')),
    remove: button('Delete', 'danger', () => void act(id, 'delete')),
  };
  row.tr.append(
    el('th', { scope: 'row' }, row.open, el('br'), row.id),
    el('td', {}, row.state),
    el('td', {}, row.image),
    el('td', {}, row.resources),
    el('td', {}, row.labels),
    el('td', {}, row.age),
    el('td', {}, row.activity),
    el('td', { class: 'actions' }, row.start, row.stop, row.remove),
  );
  return row;
}

function updateRow(row: Row, s: Sandbox): void {
  const name = s.name || s.id;
  row.tr.dataset.name = name;
  row.tr.dataset.state = s.state;
  setText(row.open, name);
  row.open.setAttribute('aria-label', `Open sandbox ${name}`);
  if (selected?.id === s.id) row.open.setAttribute('aria-current', 'true');
  else row.open.removeAttribute('aria-current');
  setText(row.id, s.id);
  setText(row.state, s.state);
  row.state.className = `state state-${s.state}`;
  row.state.title = s.errorReason ?? '';
  setText(row.image, s.snapshot);
  setText(row.resources, `${s.cpu} vCPU · ${s.memory} GiB · ${s.disk} GiB disk`);
  const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`);
  if (row.labels.dataset.value !== labels.join('\n')) {
    row.labels.dataset.value = labels.join('\n');
    row.labels.replaceChildren(...labels.map((l) => el('span', { class: 'label' }, l)));
  }
  for (const [time, iso] of [
    [row.age, s.createdAt],
    [row.activity, s.lastActivityAt],
  ] as const) {
    time.dateTime = iso;
    time.title = new Date(iso).toLocaleString();
    setText(time, relativeTime(iso));
  }
  const working = busy.has(s.id);
  row.start.disabled = working || !CAN_START.has(s.state);
  row.stop.disabled = working || !CAN_STOP.has(s.state);
  row.remove.disabled = working || CANNOT_DELETE.has(s.state);
  row.start.setAttribute('aria-label', `Start sandbox ${name}`);
  row.stop.setAttribute('aria-label', `Stop sandbox ${name}`);
  row.remove.setAttribute('aria-label', `Delete sandbox ${name}`);
}

/** Updates the table in place (rows keyed by id), so focus and selection survive every poll. */
function renderList(): void {
  const tbody = byId<HTMLTableElement>('sandboxes').tBodies[0];
  const seen = new Set<string>();
  for (const s of sandboxes) {
    seen.add(s.id);
    let row = rows.get(s.id);
    if (!row) rows.set(s.id, (row = createRow(s.id)));
    updateRow(row, s);
  }
  for (const [id, row] of rows) {
    if (seen.has(id)) continue;
    row.tr.remove();
    rows.delete(id);
  }
  // Newest first; rows are moved only when the order changed (moving a row takes the focus out of it).
  const order = sandboxes.map((s) => rows.get(s.id)!.tr);
  if (order.some((tr, i) => tbody.children[i] !== tr)) tbody.append(...order);
  byId('no-sandboxes').hidden = sandboxes.length > 0;
}

async function act(id: string, action: 'start' | 'stop' | 'delete'): Promise<void> {
  const client = api;
  const s = sandboxes.find((x) => x.id === id);
  if (!client || !s) return;
  const name = s.name || s.id;
  if (action === 'delete' && !confirm(`Delete sandbox ${name}? Its files are lost.`)) return;
  busy.add(id);
  renderList();
  announce(`${action === 'start' ? 'Starting' : action === 'stop' ? 'Stopping' : 'Deleting'} sandbox ${name}…`);
  try {
    if (action === 'start') await client.start(id);
    else if (action === 'stop') await client.stop(id);
    else {
      await client.remove(id);
      sessionStorage.removeItem(`cove.pty.${id}`);
    }
    announce(`Sandbox ${name} ${action === 'start' ? 'started' : action === 'stop' ? 'stopped' : 'deleted'}`);
  } catch (err) {
    announce(`Could not ${action} sandbox ${name}: ${messageOf(err)}`);
  } finally {
    busy.delete(id);
    await refresh();
  }
}

// ── Creating ───────────────────────────────────────────────────────────────────────────────────────────────────

/** `NAME=value` lines → an object; blank lines are skipped, a line without `=` is an error naming it. */
function parsePairs(text: string, what: string): Record<string, string> | undefined {
  const pairs: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf('=');
    if (eq <= 0) throw new Error(`${what}: "${trimmed}" is not NAME=value`);
    pairs[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1);
  }
  return Object.keys(pairs).length ? pairs : undefined;
}

function setUpCreateForm(): void {
  const form = byId<HTMLFormElement>('create-form');
  const error = byId('create-error');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const client = api;
    if (!client) return;
    const data = new FormData(form);
    const text = (name: string) => {
      const value = data.get(name);
      return typeof value === 'string' ? value.trim() : '';
    };
    const number = (name: string) => (text(name) === '' ? undefined : Number(text(name)));
    error.textContent = '';
    let body: CreateSandboxRequest;
    try {
      const source = text('source') || undefined;
      const fromSnapshot = text('sourceKind') === 'snapshot';
      body = {
        name: text('name') || undefined,
        image: fromSnapshot ? undefined : source,
        snapshot: fromSnapshot ? source : undefined,
        cpu: number('cpu'),
        memory: number('memory'),
        disk: number('disk'),
        autoStopInterval: number('autoStop'),
        env: parsePairs(text('env'), 'Environment'),
        labels: parsePairs(text('labels'), 'Labels'),
      };
    } catch (err) {
      error.textContent = messageOf(err);
      return;
    }
    const submit = form.querySelector<HTMLButtonElement>('button[type=submit]')!;
    submit.disabled = true;
    submit.textContent = 'Creating…';
    announce('Creating a sandbox…');
    client
      .create(body)
      .then(async (created) => {
        form.reset();
        byId<HTMLDetailsElement>('create').open = false;
        announce(`Sandbox ${created.name || created.id} is ${created.state}`);
        await refresh();
        select(created.id, 'terminal', true);
      })
      .catch((err) => {
        error.textContent = messageOf(err);
        announce('');
      })
      .finally(() => {
        submit.disabled = false;
        submit.textContent = 'Create sandbox';
      });
  });
}

// ── One sandbox: terminal, files, preview, SSH ─────────────────────────────────────────────────────────────────

/** `#<sandbox id>/<tab>`: which sandbox and tab a reload comes back to (ids only, no secret). */
function routeFromHash(): { id: string; tab: Tab } | undefined {
  const [id, tab] = location.hash.slice(1).split('/');
  if (!id) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(id);
  } catch {
    return undefined;
  }
  return { id: decoded, tab: (TABS as readonly string[]).includes(tab) ? (tab as Tab) : 'terminal' };
}

function select(id: string, tab: Tab, focus: boolean): void {
  const changed = selected?.id !== id;
  selected = { id, tab };
  history.replaceState(null, '', `#${encodeURIComponent(id)}/${tab}`);
  if (changed) {
    terminal?.dispose();
    terminal = undefined;
    byId('preview-result').hidden = true;
    byId('ssh-result').hidden = true;
    for (const e of ['preview-error', 'ssh-error', 'files-error']) byId(e).textContent = '';
  }
  renderList();
  renderDetail(changed || focus);
  if (focus) byId(`tab-${tab}`).focus();
}

function closeDetail(): void {
  terminal?.dispose();
  terminal = undefined;
  selected = undefined;
  byId('detail').hidden = true;
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  renderList();
}

function setTerminalStatus(text: string, state: TerminalState): void {
  setText(byId('terminal-status'), text);
  byId('terminal-reconnect').hidden = state !== 'closed';
}

/** Shows the selected sandbox and its tab; `entering` is true when the tab was just chosen (not a poll). */
function renderDetail(entering = false): void {
  if (!selected) return;
  const s = sandboxes.find((x) => x.id === selected!.id);
  if (!s) {
    // Deleted (here or elsewhere).
    sessionStorage.removeItem(`cove.pty.${selected.id}`);
    closeDetail();
    return;
  }
  const { tab } = selected;
  byId('detail').hidden = false;
  setText(byId('detail-name'), s.name || s.id);
  const state = byId('detail-state');
  setText(state, s.state);
  state.className = `state state-${s.state}`;
  for (const t of TABS) {
    const button = byId(`tab-${t}`);
    button.setAttribute('aria-selected', String(t === tab));
    button.tabIndex = t === tab ? 0 : -1;
    byId(`panel-${t}`).hidden = t !== tab;
  }
  const started = s.state === 'started';
  if (tab === 'terminal') {
    if (!started) {
      terminal?.dispose();
      terminal = undefined;
      setTerminalStatus(`The sandbox is ${s.state}: start it to open a terminal.`, 'connecting');
    } else if (!terminal) {
      terminal = createTerminalView({
        api: api!,
        sandboxId: s.id,
        host: byId('terminal'),
        screenReaderMode: byId<HTMLInputElement>('terminal-reader').checked,
        onStatus: setTerminalStatus,
      });
      terminal.show();
    } else if (entering) {
      terminal.show();
    }
  }
  if (tab === 'files' && entering) {
    if (started) files.show(s.id);
    else byId('files-error').textContent = `The sandbox is ${s.state}: start it to see its files.`;
  }
}

function setUpDetail(): void {
  byId('detail-close').addEventListener('click', closeDetail);
  const tablist = byId('tab-terminal').parentElement!;
  for (const t of TABS) byId(`tab-${t}`).addEventListener('click', () => selected && select(selected.id, t, true));
  // Arrow keys, Home and End move between tabs, as in any tab list.
  tablist.addEventListener('keydown', (event) => {
    if (!selected) return;
    const i = TABS.indexOf(selected.tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    select(selected.id, TABS[(next + TABS.length) % TABS.length], true);
  });

  byId('terminal-reconnect').addEventListener('click', () => terminal?.reconnect());
  // A preference of this browser, not of the session: kept in localStorage.
  const reader = byId<HTMLInputElement>('terminal-reader');
  reader.checked = localStorage.getItem(SCREEN_READER_STORAGE) === 'on';
  reader.addEventListener('change', () => {
    localStorage.setItem(SCREEN_READER_STORAGE, reader.checked ? 'on' : 'off');
    terminal?.setScreenReaderMode(reader.checked);
  });
  byId('terminal-copy').addEventListener('click', () => terminal?.copy());
  byId('terminal-paste').addEventListener('click', () => terminal?.paste());
  byId('terminal-new').addEventListener('click', () => {
    if (terminal && confirm('End the current shell and start a new one?')) terminal.newSession();
  });

  byId<HTMLFormElement>('preview-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = selected?.id;
    const port = Number(byId<HTMLInputElement>('preview-port').value);
    if (!api || !id) return;
    byId('preview-error').textContent = '';
    api
      .previewUrl(id, port)
      .then(({ url, token }) => {
        const open = new URL(url);
        // The preview host turns this parameter into a cookie of its own and redirects to the URL without it.
        open.searchParams.set('DAYTONA_SANDBOX_AUTH_KEY', token);
        byId<HTMLAnchorElement>('preview-open').href = open.href;
        byId<HTMLInputElement>('preview-url').value = url;
        byId<HTMLInputElement>('preview-token').value = token;
        byId('preview-result').hidden = false;
        announce(`Preview link of port ${port} ready`);
      })
      .catch((err) => (byId('preview-error').textContent = messageOf(err)));
  });

  byId<HTMLFormElement>('ssh-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = selected?.id;
    const minutes = Number(byId<HTMLInputElement>('ssh-minutes').value);
    if (!api || !id) return;
    byId('ssh-error').textContent = '';
    api
      .sshAccess(id, minutes)
      .then((access) => {
        byId<HTMLInputElement>('ssh-command').value = access.sshCommand;
        const expires = byId('ssh-expires');
        expires.textContent = new Date(access.expiresAt).toLocaleString();
        byId('ssh-result').hidden = false;
        announce('SSH command ready');
      })
      .catch((err) => (byId('ssh-error').textContent = messageOf(err)));
  });

  // Copy buttons name the input whose value they copy.
  document.addEventListener('click', (event) => {
    const target = event.target instanceof HTMLElement ? event.target.closest<HTMLElement>('[data-copy]') : null;
    if (!target?.dataset.copy) return;
    copyText(byId<HTMLInputElement>(target.dataset.copy).value)
      .then(() => announce('Copied to the clipboard'))
      .catch((err) => announce(`Could not copy: ${messageOf(err)}`));
  });
}

// ── Start ──────────────────────────────────────────────────────────────────────────────────────────────────────

function start(): void {
  byId<HTMLFormElement>('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = byId<HTMLInputElement>('api-key');
    const key = input.value.trim();
    if (!key) return;
    const submit = (event.target as HTMLFormElement).querySelector<HTMLButtonElement>('button[type=submit]')!;
    submit.disabled = true;
    signIn(key)
      .then(() => {
        input.value = '';
        announce('Signed in');
      })
      .catch((err) => {
        const refused = err instanceof ApiError && err.status === 401;
        byId('sign-in-error').textContent = refused ? 'Cove refused this API key.' : `Could not sign in: ${messageOf(err)}`;
      })
      .finally(() => (submit.disabled = false));
  });
  byId('sign-out').addEventListener('click', () => {
    signOut();
    announce('Signed out');
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && api) void refresh();
  });
  setUpCreateForm();
  setUpDetail();
  files = createFilesView(() => api);

  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) return showSignIn();
  signIn(key).catch((err) => {
    if (err instanceof ApiError && err.status === 401) signOut('Cove refused the API key: sign in again.');
    else showSignIn(`Could not reach Cove: ${messageOf(err)}`);
  });
}

start();
