// The files tab: one folder of the sandbox at a time, through the toolbox's file routes — list, open folders, go up,
// upload (multipart), download (fetched with the key, handed to the browser as a Blob URL) and delete.
import type { Api, FileInfo } from './api';
import { announce, byId, el, formatBytes, messageOf } from './dom';

/** `dir` + `/` + `name`, without doubling the slash of `/`. */
const join = (dir: string, name: string) => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);
/** The folder above `path` (`/` stays `/`). */
const parentOf = (path: string) => path.replace(/\/+[^/]+\/*$/, '') || '/';

export interface FilesView {
  /** Shows a sandbox's files: where the user last was in it, or its user's home the first time. */
  show(sandboxId: string): void;
}

/** The files tab's form and table, wired once; `client()` is the signed-in API client of the moment. */
export function createFilesView(client: () => Api | undefined): FilesView {
  /** The client, or an error the tab shows: calls only happen while signed in. */
  const api = (): Api => {
    const current = client();
    if (!current) throw new Error('Sign in first');
    return current;
  };
  const form = byId<HTMLFormElement>('files-form');
  const pathInput = byId<HTMLInputElement>('files-path');
  const upload = byId<HTMLInputElement>('files-upload');
  const error = byId('files-error');
  const tbody = byId<HTMLTableElement>('files').tBodies[0];
  let sandboxId: string | undefined;
  let folder: string | undefined;

  const fail = (err: unknown) => {
    error.textContent = messageOf(err);
  };

  async function open(path: string): Promise<void> {
    const id = sandboxId;
    if (!id) return;
    error.textContent = '';
    const entries = await api().listFiles(id, path);
    if (id !== sandboxId) return;
    folder = path;
    pathInput.value = path;
    entries.sort((a, b) => Number(b.isDir) - Number(a.isDir) || a.name.localeCompare(b.name));
    tbody.replaceChildren(...entries.map((entry) => row(id, path, entry)));
    if (!entries.length) tbody.append(el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'This folder is empty.')));
  }

  function row(id: string, dir: string, entry: FileInfo): HTMLTableRowElement {
    const path = join(dir, entry.name);
    const name = entry.isDir
      ? el('button', { type: 'button', class: 'link', 'aria-label': `Open folder ${entry.name}` }, `${entry.name}/`)
      : el('span', {}, entry.name);
    if (entry.isDir) name.addEventListener('click', () => void open(path).catch(fail));
    const actions = el('td', { class: 'actions' });
    if (!entry.isDir) {
      const download = el('button', { type: 'button', class: 'secondary', 'aria-label': `Download ${entry.name}` }, 'Download');
      download.addEventListener('click', () => void saveFile(id, path, entry.name).catch(fail));
      actions.append(download);
    }
    const remove = el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${entry.name}` }, 'Delete');
    remove.addEventListener('click', () => {
      if (!confirm(`Delete ${path}${entry.isDir ? ' and everything in it' : ''}?`)) return;
      api()
        .deleteFile(id, path, entry.isDir)
        .then(() => announce(`Deleted ${path}`))
        .then(() => open(dir))
        .catch(fail);
    });
    actions.append(remove);
    const modified = new Date(entry.modifiedAt);
    return el(
      'tr',
      { 'data-name': entry.name },
      el('td', {}, name),
      el('td', { class: 'number' }, entry.isDir ? '—' : formatBytes(entry.size)),
      el('td', {}, el('time', { datetime: entry.modifiedAt }, modified.toLocaleString())),
      el('td', {}, el('code', {}, entry.mode)),
      actions,
    );
  }

  /** The file's bytes, fetched with the key, saved by the browser under the file's name. */
  async function saveFile(id: string, path: string, name: string): Promise<void> {
    const blob = await api().download(id, path);
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: name, hidden: '' });
    document.body.append(link);
    link.click();
    link.remove();
    // The browser has started the download by now; the URL is only kept a little while for slow starts.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    announce(`Downloading ${name}`);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const path = pathInput.value.trim();
    if (path) open(path).catch(fail);
  });
  byId('files-up').addEventListener('click', () => {
    if (folder) open(parentOf(folder)).catch(fail);
  });
  upload.addEventListener('change', () => {
    const id = sandboxId;
    const dir = folder;
    const files = Array.from(upload.files ?? []);
    upload.value = '';
    if (!id || !dir || !files.length) return;
    void (async () => {
      try {
        for (const file of files) {
          announce(`Uploading ${file.name}…`);
          await api().upload(id, join(dir, file.name), file);
        }
        announce(files.length === 1 ? `Uploaded ${files[0].name}` : `Uploaded ${files.length} files`);
        await open(dir);
      } catch (err) {
        fail(err);
      }
    })();
  });

  return {
    show(id) {
      if (id !== sandboxId) {
        sandboxId = id;
        folder = undefined;
        tbody.replaceChildren();
        pathInput.value = '';
      }
      Promise.resolve()
        .then(() => folder ?? api().homeDir(id))
        .then((path) => open(path))
        .catch(fail);
    },
  };
}
