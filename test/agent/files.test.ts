/**
 * Files capability: every /files route against a real agent process over real HTTP, including GiB transfers,
 * aborted uploads, a full disk (a real tmpfs) and the Daytona SDK's own toolbox client.
 */
import { FileSystem } from '@daytonaio/sdk';
import { Configuration, FileSystemApi } from '@daytona/toolbox-api-client';
import busboy from 'busboy';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorBody } from '../../wire/errors';
import { BulkDownloadError, FileInfo, FileInfoList, MatchList, ReplaceResultList, SearchFilesResponse, UploadedFile } from '../../wire/files';
import { startAgent, waitFor, type TestAgent } from '../helpers/agent';

let agent: TestAgent;
const temps: string[] = [];

beforeAll(async () => {
  agent = await startAgent();
});
afterAll(async () => {
  await agent?.stop();
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** A fresh folder under the agent's work dir, as an absolute path. */
let counter = 0;
function freshDir(name: string): string {
  const dir = path.join(agent.workdir, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const q = (params: Record<string, string | number | boolean>) =>
  new URLSearchParams(Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]))).toString();

/** Sends a request and returns status and parsed JSON (or text) body. */
async function call(method: string, route: string, init: { body?: BodyInit; json?: unknown; headers?: Record<string, string> } = {}) {
  const res = await agent.fetch(route, {
    method,
    body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
    headers: { ...(init.json !== undefined ? { 'Content-Type': 'application/json' } : {}), ...init.headers },
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, headers: res.headers };
}

/** Expects the flat error envelope with `code` and `status`. */
function expectError(res: { status: number; body: unknown }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  const body = ErrorBody.parse(res.body);
  expect(body.code).toBe(code);
  expect(body.source).toBe('DAYTONA_DAEMON');
  expect(body.message.length).toBeGreaterThan(5);
}

async function uploadMultipart(target: string, content: string | Buffer, route = '/files/upload') {
  const form = new FormData();
  form.append('file', new Blob([typeof content === 'string' ? content : new Uint8Array(content)]), path.basename(target));
  return call('POST', `${route}?${q({ path: target })}`, { body: form });
}

/** Files left behind in a folder, temp files included. */
const leftovers = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);

/** Parses a multipart/form-data response the way the SDK does (busboy, filenames kept as paths). */
async function parseMultipart(res: Response): Promise<{ field: string; filename: string; mimeType: string; data: Buffer }[]> {
  const parts: { field: string; filename: string; mimeType: string; data: Buffer }[] = [];
  const headers = { 'content-type': res.headers.get('content-type') ?? '' };
  await new Promise<void>((resolve, reject) => {
    const bb = busboy({ headers, preservePath: true });
    bb.on('file', (field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => parts.push({ field, filename: info.filename ?? '', mimeType: info.mimeType, data: Buffer.concat(chunks) }));
    });
    bb.on('close', resolve);
    bb.on('error', reject);
    Readable.fromWeb(res.body as any).pipe(bb);
  });
  return parts;
}

describe('listing and metadata', () => {
  it('lists a folder with Daytona FileInfo fields, sorted, and deeper with depth', async () => {
    const dir = freshDir('list');
    writeFileSync(path.join(dir, 'b.txt'), 'bbb');
    writeFileSync(path.join(dir, 'a.sh'), '#!/bin/sh\n', { mode: 0o755 });
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'sub', 'deep.txt'), 'deep');

    const res = await call('GET', `/files?${q({ path: dir })}`);
    expect(res.status).toBe(200);
    const list = FileInfoList.parse(res.body);
    expect(list.map((f) => f.name)).toEqual(['a.sh', 'b.txt', 'sub']);
    const [sh, txt, sub] = list;
    expect(sh).toMatchObject({ size: 10, isDir: false, mode: '-rwxr-xr-x', permissions: '0755', path: path.join(dir, 'a.sh') });
    expect(txt).toMatchObject({ size: 3, isDir: false, owner: os.userInfo().username });
    expect(sub).toMatchObject({ isDir: true });
    expect(sub.mode.startsWith('d')).toBe(true);
    expect(new Date(txt.modifiedAt).getTime()).toBe(Math.floor(statSync(path.join(dir, 'b.txt')).mtimeMs));
    expect(txt.modTime).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC$/);

    const deep = FileInfoList.parse((await call('GET', `/files?${q({ path: dir, depth: 2 })}`)).body);
    expect(deep.map((f) => f.path)).toContain(path.join(dir, 'sub', 'deep.txt'));

    // Relative paths resolve against the work dir.
    const rel = FileInfoList.parse((await call('GET', `/files?${q({ path: path.basename(dir) })}`)).body);
    expect(rel.map((f) => f.name)).toEqual(['a.sh', 'b.txt', 'sub']);
  });

  it('answers info for files and folders, and clear errors', async () => {
    const dir = freshDir('info');
    writeFileSync(path.join(dir, 'f.txt'), 'hello');
    const info = FileInfo.parse((await call('GET', `/files/info?${q({ path: path.join(dir, 'f.txt') })}`)).body);
    expect(info).toMatchObject({ name: 'f.txt', size: 5, isDir: false, permissions: '0644' });
    const folder = FileInfo.parse((await call('GET', `/files/info?${q({ path: dir })}`)).body);
    expect(folder.isDir).toBe(true);

    expectError(await call('GET', `/files/info?${q({ path: path.join(dir, 'missing') })}`), 404, 'FILE_NOT_FOUND');
    expectError(await call('GET', '/files/info'), 400, 'INVALID_REQUEST');
    expectError(await call('GET', `/files/info?${q({ path: '' })}`), 400, 'INVALID_REQUEST');
    expectError(await call('GET', `/files?${q({ path: path.join(dir, 'f.txt') })}`), 400, 'NOT_A_DIRECTORY');
    expectError(await call('GET', `/files?${q({ path: path.join(dir, 'nope') })}`), 404, 'FILE_NOT_FOUND');
    expectError(await call('GET', `/files?${q({ path: dir, depth: 0 })}`), 400, 'INVALID_REQUEST');
  });
});

describe('upload and download', () => {
  it('uploads multipart into new parent folders and downloads it back with Content-Length', async () => {
    const dir = freshDir('up');
    const target = path.join(dir, 'x', 'y', 'hello.txt');
    const res = await uploadMultipart(target, 'hello world\n');
    expect(res.status).toBe(200);
    expect(UploadedFile.parse(res.body)).toMatchObject({ name: 'hello.txt', path: target });
    expect(readFileSync(target, 'utf8')).toBe('hello world\n');
    expect(statSync(target).mode & 0o777).toBe(0o644);
    expect(leftovers(path.dirname(target))).toEqual(['hello.txt']);

    const dl = await agent.fetch(`/files/download?${q({ path: target })}`);
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-type')).toBe('application/octet-stream');
    expect(dl.headers.get('content-length')).toBe('12');
    expect(await dl.text()).toBe('hello world\n');

    // Empty files work both ways.
    expect((await uploadMultipart(path.join(dir, 'empty'), '')).status).toBe(200);
    const empty = await agent.fetch(`/files/download?${q({ path: path.join(dir, 'empty') })}`);
    expect(empty.headers.get('content-length')).toBe('0');
    expect((await empty.arrayBuffer()).byteLength).toBe(0);
  });

  it('overwrites an existing file keeping its mode, and takes a raw body on upload-v2', async () => {
    const dir = freshDir('over');
    const target = path.join(dir, 'run.sh');
    writeFileSync(target, 'old', { mode: 0o750 });
    expect((await uploadMultipart(target, 'new contents')).status).toBe(200);
    expect(readFileSync(target, 'utf8')).toBe('new contents');
    expect(statSync(target).mode & 0o777).toBe(0o750);

    const raw = randomBytes(300_000);
    const res = await call('POST', `/files/upload-v2?${q({ path: path.join(dir, 'raw.bin') })}`, {
      body: raw,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    expect(res.status).toBe(200);
    expect(readFileSync(path.join(dir, 'raw.bin')).equals(raw)).toBe(true);
    expect(leftovers(dir).sort()).toEqual(['raw.bin', 'run.sh']);
  });

  it('rejects bad uploads without leaving anything behind', async () => {
    const dir = freshDir('badup');
    mkdirSync(path.join(dir, 'adir'));
    expectError(await uploadMultipart(path.join(dir, 'adir'), 'x'), 400, 'IS_A_DIRECTORY');
    expectError(await uploadMultipart('', 'x'), 400, 'INVALID_REQUEST');
    const noPath = new FormData();
    noPath.append('file', new Blob(['x']), 'x');
    expectError(await call('POST', '/files/upload', { body: noPath }), 400, 'INVALID_REQUEST');
    const wrongField = new FormData();
    wrongField.append('other', new Blob(['x']), 'x');
    expectError(await call('POST', `/files/upload?${q({ path: path.join(dir, 'w.txt') })}`, { body: wrongField }), 400, 'INVALID_REQUEST');
    // A multipart body cut before its closing boundary.
    const cut = await call('POST', `/files/upload?${q({ path: path.join(dir, 'cut.txt') })}`, {
      body: '--XX\r\nContent-Disposition: form-data; name="file"; filename="cut.txt"\r\n\r\npartial data',
      headers: { 'Content-Type': 'multipart/form-data; boundary=XX' },
    });
    expectError(cut, 400, 'INVALID_REQUEST');
    // A file in the way of a parent folder.
    writeFileSync(path.join(dir, 'plain'), 'x');
    expectError(await uploadMultipart(path.join(dir, 'plain', 'child.txt'), 'x'), 400, 'NOT_A_DIRECTORY');
    expect(leftovers(dir).sort()).toEqual(['adir', 'plain']);
    expect(leftovers(path.join(dir, 'adir'))).toEqual([]);
  });

  it('download errors: missing file, folder, missing path', async () => {
    const dir = freshDir('dlerr');
    expectError(await call('GET', `/files/download?${q({ path: path.join(dir, 'none.txt') })}`), 404, 'FILE_NOT_FOUND');
    expectError(await call('GET', `/files/download?${q({ path: dir })}`), 400, 'IS_A_DIRECTORY');
    expectError(await call('GET', '/files/download'), 400, 'INVALID_REQUEST');
  });
});

describe('bulk transfers', () => {
  it('bulk-uploads files[i].path / files[i].file pairs', async () => {
    const dir = freshDir('bulkup');
    const form = new FormData();
    const files = { 'one.txt': 'first', 'deep/two.txt': 'second', 'three.bin': randomBytes(70_000).toString('latin1') };
    Object.entries(files).forEach(([name, content], i) => {
      form.append(`files[${i}].path`, path.join(dir, name));
      form.append(`files[${i}].file`, new Blob([Buffer.from(content, 'latin1')]), path.join(dir, name));
    });
    const res = await call('POST', '/files/bulk-upload', { body: form });
    expect(res.status).toBe(200);
    expect(res.body.map((f: UploadedFile) => f.path)).toEqual(Object.keys(files).map((n) => path.join(dir, n)));
    for (const [name, content] of Object.entries(files)) {
      expect(readFileSync(path.join(dir, name)).equals(Buffer.from(content, 'latin1'))).toBe(true);
    }
  });

  it('a failing bulk upload writes none of its files', async () => {
    const dir = freshDir('bulkfail');
    mkdirSync(path.join(dir, 'blocker'));
    const form = new FormData();
    form.append('files[0].path', path.join(dir, 'ok.txt'));
    form.append('files[0].file', new Blob(['fine']), 'ok.txt');
    form.append('files[1].path', path.join(dir, 'blocker'));
    form.append('files[1].file', new Blob(['cannot']), 'blocker');
    expectError(await call('POST', '/files/bulk-upload', { body: form }), 400, 'IS_A_DIRECTORY');
    expect(leftovers(dir)).toEqual(['blocker']);
    expectError(await call('POST', '/files/bulk-upload', { body: 'x', headers: { 'Content-Type': 'text/plain' } }), 400, 'INVALID_REQUEST');
  });

  it('bulk-downloads as multipart: file parts named by the requested path, JSON error parts', async () => {
    const dir = freshDir('bulkdl');
    const big = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(path.join(dir, 'big.bin'), big);
    writeFileSync(path.join(dir, 'ünï cødé "q".txt'), 'unicode');
    writeFileSync(path.join(dir, 'empty'), '');
    const rel = path.join(path.basename(dir), 'empty');
    const paths = [path.join(dir, 'big.bin'), path.join(dir, 'missing.txt'), dir, path.join(dir, 'ünï cødé "q".txt'), rel];
    const res = await agent.fetch('/files/bulk-download', {
      method: 'POST',
      body: JSON.stringify({ paths }),
      headers: { 'Content-Type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^multipart\/form-data; boundary=/);
    const parts = await parseMultipart(res);
    expect(parts.map((p) => [p.field, p.filename])).toEqual([
      ['file', paths[0]],
      ['error', paths[1]],
      ['error', paths[2]],
      ['file', paths[3]],
      ['file', rel],
    ]);
    expect(parts[0].data.equals(big)).toBe(true);
    expect(BulkDownloadError.parse(JSON.parse(parts[1].data.toString()))).toMatchObject({ code: 'FILE_NOT_FOUND', statusCode: 404, source: 'DAYTONA_DAEMON' });
    expect(parts[1].mimeType).toBe('application/json');
    expect(BulkDownloadError.parse(JSON.parse(parts[2].data.toString()))).toMatchObject({ code: 'IS_A_DIRECTORY', statusCode: 400 });
    expect(parts[3].data.toString()).toBe('unicode');
    expect(parts[4].data.length).toBe(0);

    expectError(await call('POST', '/files/bulk-download', { json: { paths: [] } }), 400, 'INVALID_REQUEST');
    expectError(await call('POST', '/files/bulk-download', { json: {} }), 400, 'INVALID_REQUEST');
    expectError(await call('POST', '/files/bulk-download', { body: '{nope', headers: { 'Content-Type': 'application/json' } }), 400, 'INVALID_JSON');
  });
});

describe('delete, folders, move, permissions', () => {
  it('deletes files, empty folders, and trees only with recursive', async () => {
    const dir = freshDir('del');
    writeFileSync(path.join(dir, 'f'), 'x');
    mkdirSync(path.join(dir, 'empty'));
    mkdirSync(path.join(dir, 'full', 'inner'), { recursive: true });
    writeFileSync(path.join(dir, 'full', 'inner', 'g'), 'x');

    expect((await call('DELETE', `/files?${q({ path: path.join(dir, 'f') })}`)).status).toBe(204);
    expect((await call('DELETE', `/files?${q({ path: path.join(dir, 'empty') })}`)).status).toBe(204);
    expectError(await call('DELETE', `/files?${q({ path: path.join(dir, 'full') })}`), 409, 'DIRECTORY_NOT_EMPTY');
    expect(existsSync(path.join(dir, 'full', 'inner', 'g'))).toBe(true);
    expectError(await call('DELETE', `/files?${q({ path: path.join(dir, 'full'), recursive: 'maybe' })}`), 400, 'INVALID_REQUEST');
    expect((await call('DELETE', `/files?${q({ path: path.join(dir, 'full'), recursive: true })}`)).status).toBe(204);
    expect(leftovers(dir)).toEqual([]);
    expectError(await call('DELETE', `/files?${q({ path: path.join(dir, 'f') })}`), 404, 'FILE_NOT_FOUND');
    expectError(await call('DELETE', '/files'), 400, 'INVALID_REQUEST');
  });

  it('creates folders with a mode, and rejects bad modes and files in the way', async () => {
    const dir = freshDir('mk');
    expect((await call('POST', `/files/folder?${q({ path: path.join(dir, 'a', 'b'), mode: '700' })}`)).status).toBe(204);
    expect(statSync(path.join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
    // Existing folder: fine. Default mode is 755 whatever the umask.
    expect((await call('POST', `/files/folder?${q({ path: path.join(dir, 'a', 'b'), mode: '700' })}`)).status).toBe(204);
    expect((await call('POST', `/files/folder?${q({ path: path.join(dir, 'c') })}`)).status).toBe(204);
    expect(statSync(path.join(dir, 'c')).mode & 0o777).toBe(0o755);

    expectError(await call('POST', `/files/folder?${q({ path: path.join(dir, 'd'), mode: '999' })}`), 400, 'INVALID_REQUEST');
    expectError(await call('POST', `/files/folder?${q({ path: path.join(dir, 'd'), mode: 'rwx' })}`), 400, 'INVALID_REQUEST');
    expect(existsSync(path.join(dir, 'd'))).toBe(false);
    writeFileSync(path.join(dir, 'file'), 'x');
    expectError(await call('POST', `/files/folder?${q({ path: path.join(dir, 'file') })}`), 409, 'FILE_EXISTS');
    expectError(await call('POST', '/files/folder'), 400, 'INVALID_REQUEST');
  });

  it('moves and renames files and folders', async () => {
    const dir = freshDir('mv');
    writeFileSync(path.join(dir, 'a.txt'), 'A');
    expect((await call('POST', `/files/move?${q({ source: path.join(dir, 'a.txt'), destination: path.join(dir, 'new', 'b.txt') })}`)).status).toBe(204);
    expect(readFileSync(path.join(dir, 'new', 'b.txt'), 'utf8')).toBe('A');
    expect(existsSync(path.join(dir, 'a.txt'))).toBe(false);
    expect((await call('POST', `/files/move?${q({ source: path.join(dir, 'new'), destination: path.join(dir, 'renamed') })}`)).status).toBe(204);
    expect(readFileSync(path.join(dir, 'renamed', 'b.txt'), 'utf8')).toBe('A');

    expectError(await call('POST', `/files/move?${q({ source: path.join(dir, 'ghost'), destination: path.join(dir, 'x') })}`), 404, 'FILE_NOT_FOUND');
    expectError(await call('POST', `/files/move?${q({ source: path.join(dir, 'renamed'), destination: path.join(dir, 'renamed', 'in') })}`), 400, 'INVALID_REQUEST');
    expectError(await call('POST', `/files/move?${q({ source: path.join(dir, 'renamed') })}`), 400, 'INVALID_REQUEST');
    expect(leftovers(dir)).toEqual(['renamed']);
  });

  it('sets mode, owner and group', async () => {
    const dir = freshDir('perm');
    const f = path.join(dir, 'f');
    writeFileSync(f, 'x');
    expect((await call('POST', `/files/permissions?${q({ path: f, mode: '600' })}`)).status).toBe(204);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect((await call('POST', `/files/permissions?${q({ path: f, owner: 'nobody', group: 'nogroup' })}`)).status).toBe(204);
    expect(statSync(f).uid).toBe(65534);
    expect(statSync(f).gid).toBe(65534);
    expect((await call('POST', `/files/permissions?${q({ path: f, owner: '0', group: '0' })}`)).status).toBe(204);
    expect(statSync(f).uid).toBe(0);
    const info = FileInfo.parse((await call('GET', `/files/info?${q({ path: f })}`)).body);
    expect(info).toMatchObject({ owner: 'root', group: 'root', permissions: '0600', mode: '-rw-------' });

    expectError(await call('POST', `/files/permissions?${q({ path: f, owner: 'no-such-user-xyz' })}`), 400, 'INVALID_REQUEST');
    expectError(await call('POST', `/files/permissions?${q({ path: f, mode: '8' })}`), 400, 'INVALID_REQUEST');
    expectError(await call('POST', `/files/permissions?${q({ path: f })}`), 400, 'INVALID_REQUEST');
    expectError(await call('POST', `/files/permissions?${q({ path: path.join(dir, 'g'), mode: '644' })}`), 404, 'FILE_NOT_FOUND');
  });
});

describe('replace, find, search', () => {
  it('replaces literal text in files, across read chunks, keeping mode', async () => {
    const dir = freshDir('rep');
    writeFileSync(path.join(dir, 'a.txt'), 'version 1.0.0 and 1x0x0\nversion 1.0.0\n', { mode: 0o640 });
    // An occurrence straddling the 256 KiB read boundary.
    const pad = 'z'.repeat(256 * 1024 - 3);
    writeFileSync(path.join(dir, 'big.txt'), `${pad}NEEDLE${pad}NEEDLE`);
    writeFileSync(path.join(dir, 'none.txt'), 'nothing here');
    const before = statSync(path.join(dir, 'none.txt')).mtimeMs;

    const res = await call('POST', '/files/replace', {
      json: { files: [path.join(dir, 'a.txt'), path.join(dir, 'big.txt'), path.join(dir, 'none.txt'), path.join(dir, 'gone.txt')], pattern: '1.0.0', newValue: '2.0.0' },
    });
    expect(res.status).toBe(200);
    const results = ReplaceResultList.parse(res.body);
    expect(results.map((r) => r.success)).toEqual([true, true, true, false]);
    expect(results[3].error).toMatch(/^Not found: /);
    expect(readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('version 2.0.0 and 1x0x0\nversion 2.0.0\n');
    expect(statSync(path.join(dir, 'a.txt')).mode & 0o777).toBe(0o640);
    expect(statSync(path.join(dir, 'none.txt')).mtimeMs).toBe(before);

    await call('POST', '/files/replace', { json: { files: [path.join(dir, 'big.txt')], pattern: 'NEEDLE', newValue: '' } });
    expect(readFileSync(path.join(dir, 'big.txt'), 'utf8')).toBe(pad + pad);
    expect(leftovers(dir).sort()).toEqual(['a.txt', 'big.txt', 'none.txt']);

    expectError(await call('POST', '/files/replace', { json: { files: [path.join(dir, 'a.txt')], pattern: '', newValue: 'x' } }), 400, 'INVALID_REQUEST');
    expectError(await call('POST', '/files/replace', { json: { files: [], pattern: 'a', newValue: 'x' } }), 400, 'INVALID_REQUEST');
  });

  it('finds lines containing a text, with exact line numbers, skipping binary files', async () => {
    const dir = freshDir('find');
    const lines = Array.from({ length: 60_000 }, (_, i) => (i % 9_999 === 0 ? `line ${i} TODO: fix` : `line ${i} ok`));
    writeFileSync(path.join(dir, 'big.txt'), `${lines.join('\n')}\n`); // well over one read chunk
    mkdirSync(path.join(dir, 'src', 'deep'), { recursive: true });
    writeFileSync(path.join(dir, 'src', 'deep', 'a.ts'), 'const a = 1;\r\n// TODO: crlf line\r\n');
    writeFileSync(path.join(dir, 'bin.dat'), Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from('TODO: hidden')]));
    writeFileSync(path.join(dir, 'long.min.js'), `${'x'.repeat(200_000)}TODO: end\nshort TODO: after\n`);

    const res = await call('GET', `/files/find?${q({ path: dir, pattern: 'TODO:' })}`);
    expect(res.status).toBe(200);
    const matches = MatchList.parse(res.body);
    const expected = lines.flatMap((l, i) => (l.includes('TODO:') ? [{ file: path.join(dir, 'big.txt'), line: i + 1, content: l }] : []));
    expect(matches.filter((m) => m.file.endsWith('big.txt'))).toEqual(expected);
    expect(matches).toContainEqual({ file: path.join(dir, 'src', 'deep', 'a.ts'), line: 2, content: '// TODO: crlf line' });
    expect(matches.some((m) => m.file.endsWith('bin.dat'))).toBe(false);
    const long = matches.filter((m) => m.file.endsWith('long.min.js'));
    expect(long.map((m) => m.line)).toEqual([1, 2]);
    expect(long[0].content.length).toBeLessThanOrEqual(64 * 1024);
    expect(long[1].content).toBe('short TODO: after');

    // Relative roots give relative paths; a file can be searched alone.
    const rel = MatchList.parse((await call('GET', `/files/find?${q({ path: path.basename(dir) + '/src', pattern: 'TODO' })}`)).body);
    expect(rel).toEqual([{ file: `${path.basename(dir)}/src/deep/a.ts`, line: 2, content: '// TODO: crlf line' }]);
    const one = MatchList.parse((await call('GET', `/files/find?${q({ path: path.join(dir, 'big.txt'), pattern: 'line 19998 ' })}`)).body);
    expect(one).toEqual([{ file: path.join(dir, 'big.txt'), line: 19999, content: 'line 19998 TODO: fix' }]);

    expectError(await call('GET', `/files/find?${q({ path: dir })}`), 400, 'INVALID_REQUEST');
    expectError(await call('GET', `/files/find?${q({ path: path.join(dir, 'nope'), pattern: 'x' })}`), 404, 'FILE_NOT_FOUND');
  });

  it('finds across a large tree with every match accounted for', async () => {
    const dir = freshDir('tree');
    let expected = 0;
    for (let d = 0; d < 40; d++) {
      mkdirSync(path.join(dir, `d${d}`));
      for (let f = 0; f < 50; f++) {
        const hit = (d * 50 + f) % 7 === 0;
        if (hit) expected++;
        writeFileSync(path.join(dir, `d${d}`, `f${f}.txt`), `header\n${hit ? 'needle-marker here\n' : 'plain\n'}footer\n`);
      }
    }
    const matches = MatchList.parse((await call('GET', `/files/find?${q({ path: dir, pattern: 'needle-marker' })}`)).body);
    expect(matches.length).toBe(expected);
    expect(new Set(matches.map((m) => m.line))).toEqual(new Set([2]));
    // Walk order: folders and files by name.
    const files = matches.map((m) => path.relative(dir, m.file));
    expect(files).toEqual([...files].sort((a, b) => (a < b ? -1 : 1)));
  });

  it('searches names with globs', async () => {
    const dir = freshDir('glob');
    for (const f of ['a.ts', 'b.js', 'c.tsx', 'src/d.ts', 'src/x/e.md', 'doc/f.md', 'g1.txt', 'g22.txt']) {
      mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      writeFileSync(path.join(dir, f), '');
    }
    const search = async (pattern: string) =>
      SearchFilesResponse.parse((await call('GET', `/files/search?${q({ path: dir, pattern })}`)).body).files.map((f) => path.relative(dir, f)).sort();
    expect(await search('*.ts')).toEqual(['a.ts', 'src/d.ts']);
    expect(await search('*.{ts,js}')).toEqual(['a.ts', 'b.js', 'src/d.ts']);
    expect(await search('g?.txt')).toEqual(['g1.txt']);
    expect(await search('[ab].*')).toEqual(['a.ts', 'b.js']);
    expect(await search('src')).toEqual(['src']);
    expect(await search('src/**/*.md')).toEqual(['src/x/e.md']);
    // The glob semantics of watch ignores: a leading `/` anchors at the searched folder, a trailing one is left out,
    // `**/` may be no folder at all, classes take `!` and `^`.
    expect(await search('/src')).toEqual(['src']);
    expect(await search('src/')).toEqual(['src']);
    expect(await search('/*.md')).toEqual([]);
    expect(await search('**/*.md')).toEqual(['doc/f.md', 'src/x/e.md']);
    expect(await search('[^a-f]*.ts')).toEqual([]);
    expect(await search('[!a]*')).toEqual(['b.js', 'c.tsx', 'doc', 'g1.txt', 'g22.txt', 'src', 'src/d.ts', 'src/x', 'src/x/e.md', 'doc/f.md'].sort());

    expectError(await call('GET', `/files/search?${q({ path: path.join(dir, 'a.ts'), pattern: '*' })}`), 400, 'NOT_A_DIRECTORY');
    expectError(await call('GET', `/files/search?${q({ path: path.join(dir, 'zz'), pattern: '*' })}`), 404, 'FILE_NOT_FOUND');
    expectError(await call('GET', `/files/search?${q({ path: dir, pattern: '' })}`), 400, 'INVALID_REQUEST');
  });
});

/** Peak resident memory of a process, from the kernel. */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** A multipart/form-data body streamed from a file: never held in memory. */
function multipartFromFile(file: string, field: string, filename: string) {
  const boundary = `test-${randomBytes(8).toString('hex')}`;
  async function* gen() {
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`);
    yield* createReadStream(file, { highWaterMark: 1 << 20 });
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: Readable.toWeb(Readable.from(gen())) };
}

describe('large and failing transfers', () => {
  it('round-trips 1 GiB by streaming, checksums equal, agent memory flat', { timeout: 300_000 }, async () => {
    const scratch = path.join(os.tmpdir(), `cove-files-1g-${process.pid}`);
    mkdirSync(scratch, { recursive: true });
    temps.push(scratch);
    const source = path.join(scratch, 'source.bin');
    const block = randomBytes(1 << 20);
    const sourceHash = createHash('sha256');
    await new Promise<void>((resolve, reject) => {
      const out = createWriteStream(source);
      out.on('error', reject);
      let i = 0;
      const more = () => {
        while (i < 1024) {
          block.writeUInt32LE(i++, 0); // every MiB differs
          sourceHash.update(block);
          if (!out.write(Buffer.from(block))) return void out.once('drain', more);
        }
        out.end(resolve);
      };
      more();
    });
    const expected = sourceHash.digest('hex');

    const dir = freshDir('huge');
    const target = path.join(dir, 'big.bin');
    const { contentType, body } = multipartFromFile(source, 'file', 'big.bin');
    const up = await agent.fetch(`/files/upload?${q({ path: target })}`, {
      method: 'POST',
      body: body as any,
      headers: { 'Content-Type': contentType },
      duplex: 'half',
    } as RequestInit);
    expect(up.status, await up.clone().text()).toBe(200);
    expect(statSync(target).size).toBe(1 << 30);

    const dl = await agent.fetch(`/files/download?${q({ path: target })}`);
    expect(dl.headers.get('content-length')).toBe(String(1 << 30));
    const downHash = createHash('sha256');
    let received = 0;
    for await (const chunk of dl.body as any as AsyncIterable<Uint8Array>) {
      downHash.update(chunk);
      received += chunk.length;
    }
    expect(received).toBe(1 << 30);
    expect(downHash.digest('hex')).toBe(expected);
    expect(leftovers(dir)).toEqual(['big.bin']);
    // Buffering a GiB anywhere would show here; streaming stays far below.
    expect(peakRssMb(agent.process.pid!)).toBeLessThan(250);
    rmSync(target);
  });

  for (const mode of ['multipart', 'raw'] as const) {
    it(`an upload aborted mid-body (${mode}) leaves no file, temp file or new folder`, async () => {
      const dir = freshDir(`abort-${mode}`);
      const target = path.join(dir, 'new-parent', 'aborted.bin');
      const boundary = 'abortboundary';
      const url = new URL(`${agent.url}/files/${mode === 'raw' ? 'upload-v2' : 'upload'}?${q({ path: target })}`);
      const req = request(url, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${agent.token}`,
          'Content-Type': mode === 'raw' ? 'application/octet-stream' : `multipart/form-data; boundary=${boundary}`,
          'Content-Length': String(100 * 1024 * 1024),
        },
      });
      req.on('error', () => {}); // we destroy it on purpose
      if (mode === 'multipart') req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n`);
      for (let i = 0; i < 5; i++) req.write(randomBytes(1 << 20));
      // The agent is receiving: its temp file exists beside the target.
      await waitFor(() => leftovers(path.join(dir, 'new-parent')).some((f) => f.includes('.cove-upload-')), 20_000, 'temp file');
      req.destroy();
      await waitFor(() => leftovers(dir).length === 0, 20_000, 'cleanup after abort');
      expect(existsSync(target)).toBe(false);
      // The agent is still serving.
      expect((await call('GET', `/files?${q({ path: dir })}`)).status).toBe(200);
    });
  }

  it('a full disk answers 507 INSUFFICIENT_STORAGE and leaves nothing behind', async () => {
    const mnt = freshDir('tmpfs');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(`This test needs to mount a 2 MB tmpfs (run as root with mount privileges): ${(err as Error).message}`);
    }
    try {
      const tooBig = randomBytes(4 * 1024 * 1024);
      const res = await uploadMultipart(path.join(mnt, 'sub', 'big.bin'), tooBig);
      expectError(res, 507, 'INSUFFICIENT_STORAGE');
      expect(leftovers(mnt)).toEqual([]);

      const raw = await call('POST', `/files/upload-v2?${q({ path: path.join(mnt, 'raw.bin') })}`, {
        body: tooBig,
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      expectError(raw, 507, 'INSUFFICIENT_STORAGE');
      expect(leftovers(mnt)).toEqual([]);

      // In a bulk upload, the small file that fitted is not kept either.
      const form = new FormData();
      form.append('files[0].path', path.join(mnt, 'small.txt'));
      form.append('files[0].file', new Blob(['small']), 'small.txt');
      form.append('files[1].path', path.join(mnt, 'huge.bin'));
      form.append('files[1].file', new Blob([new Uint8Array(tooBig)]), 'huge.bin');
      expectError(await call('POST', '/files/bulk-upload', { body: form }), 507, 'INSUFFICIENT_STORAGE');
      expect(leftovers(mnt)).toEqual([]);

      // Space is really free again: a file that fits goes in.
      expect((await uploadMultipart(path.join(mnt, 'fits.bin'), randomBytes(1024 * 1024))).status).toBe(200);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  });
});

describe('as another account', () => {
  it('chowns uploaded files and created folders to the user code account', async () => {
    const other = await startAgent({ args: ['--user', 'nobody'] });
    try {
      const target = path.join(other.workdir, 'made', 'by', 'upload.txt');
      const form = new FormData();
      form.append('file', new Blob(['owned']), 'upload.txt');
      const res = await other.fetch(`/files/upload?${q({ path: target })}`, { method: 'POST', body: form });
      expect(res.status).toBe(200);
      for (const p of [target, path.dirname(target), path.join(other.workdir, 'made')]) {
        expect(statSync(p).uid, p).toBe(65534);
      }
      const folder = path.join(other.workdir, 'folder');
      expect((await other.fetch(`/files/folder?${q({ path: folder, mode: '755' })}`, { method: 'POST' })).status).toBe(204);
      expect(statSync(folder).uid).toBe(65534);
    } finally {
      await other.stop();
    }
  });
});

describe("the Daytona SDK's toolbox client", () => {
  it('FileSystemApi uploads, lists and downloads; FileSystem transfers through bulk routes', async () => {
    const dir = freshDir('sdk');
    const config = new Configuration({ basePath: agent.url, baseOptions: { headers: { Authorization: `Bearer ${agent.token}` } } });
    const api = new FileSystemApi(config);

    const uploaded = await api.uploadFile(path.join(dir, 'api.txt'), new File(['from the api client'], 'api.txt'));
    expect(uploaded.data.path).toBe(path.join(dir, 'api.txt'));
    const listed = await api.listFiles(dir);
    expect(listed.data.map((f) => f.name)).toEqual(['api.txt']);
    expect(listed.data[0].size).toBe(19);
    const downloaded = await api.downloadFile(path.join(dir, 'api.txt'), { responseType: 'arraybuffer' });
    expect(Buffer.from(downloaded.data as any).toString()).toBe('from the api client');
    const info = await api.getFileInfo(path.join(dir, 'api.txt'));
    expect(info.data.permissions).toBe('0644');

    const fs = new FileSystem(config, api);
    const payload = randomBytes(2 * 1024 * 1024 + 3);
    await fs.uploadFile(payload, path.join(dir, 'nested', 'sdk.bin'));
    expect((await fs.downloadFile(path.join(dir, 'nested', 'sdk.bin'))).equals(payload)).toBe(true);
    const results = await fs.downloadFiles([{ source: path.join(dir, 'api.txt') }, { source: path.join(dir, 'missing.txt') }]);
    expect(results[0].result?.toString()).toBe('from the api client');
    expect(results[1].error).toMatch(/^Not found: /);
    expect(results[1].errorDetails).toMatchObject({ code: 'FILE_NOT_FOUND', statusCode: 404 });
    const stream = await fs.downloadFileStream(path.join(dir, 'nested', 'sdk.bin'));
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
  });
});
