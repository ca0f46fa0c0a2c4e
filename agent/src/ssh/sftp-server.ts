/**
 * An SFTP version 3 server (draft-ietf-secsh-filexfer-02 with OpenSSH's extensions) on stdin/stdout, like OpenSSH's
 * sftp-server. It runs in a process of its own started as the sandbox user (see SFTP_HELPER_ARGS), so every file
 * operation has exactly that user's permissions without the agent checking any.
 *
 * The function is sent to a fresh Node process as source text (`fn.toString()`), so it must be self-contained: it
 * uses nothing from its module, and gets `require` as a parameter (a bare `require` would be rewritten by the
 * bundler).
 */
export function sftpServerMain(req: (id: string) => any): void {
  const fs = req('node:fs');
  const pathMod = req('node:path');

  const T = {
    INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, LSTAT: 7, FSTAT: 8, SETSTAT: 9, FSETSTAT: 10,
    OPENDIR: 11, READDIR: 12, REMOVE: 13, MKDIR: 14, RMDIR: 15, REALPATH: 16, STAT: 17, RENAME: 18, READLINK: 19,
    SYMLINK: 20, STATUS: 101, HANDLE: 102, DATA: 103, NAME: 104, ATTRS: 105, EXTENDED: 200, EXTENDED_REPLY: 201,
  };
  const S = { OK: 0, EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, BAD_MESSAGE: 5, OP_UNSUPPORTED: 8 };
  const A = { SIZE: 1, UIDGID: 2, PERMISSIONS: 4, ACMODTIME: 8, EXTENDED: 0x80000000 };
  /** The largest request accepted, and the read/write sizes advertised through limits@openssh.com. */
  const MAX_PACKET = 256 * 1024 + 1024;
  const MAX_IO = 255 * 1024;

  process.title = 'cove-sftp-server';

  // ── encoding ──
  // Plain closures, not classes: the bundler could otherwise add helpers for class fields outside this function.
  type Out = ReturnType<typeof out>;
  function out() {
    const o = {
      parts: [] as Buffer[],
      len: 0,
      push(b: Buffer) {
        o.parts.push(b);
        o.len += b.length;
        return o;
      },
      u8(v: number) {
        return o.push(Buffer.from([v]));
      },
      u32(v: number) {
        const b = Buffer.allocUnsafe(4);
        b.writeUInt32BE(v >>> 0);
        return o.push(b);
      },
      u64(v: number) {
        const b = Buffer.allocUnsafe(8);
        b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(v))));
        return o.push(b);
      },
      str(v: string | Buffer) {
        const b = typeof v === 'string' ? Buffer.from(v) : v;
        o.u32(b.length);
        return o.push(b);
      },
      attrs(st: any) {
        if (!st) return o.u32(0);
        o.u32(A.SIZE | A.UIDGID | A.PERMISSIONS | A.ACMODTIME).u64(st.size);
        o.u32(st.uid).u32(st.gid).u32(st.mode);
        return o.u32(Math.floor(st.atimeMs / 1000)).u32(Math.floor(st.mtimeMs / 1000));
      },
    };
    return o;
  }

  let writable = true;
  function send(type: number, id: number | undefined, body: Out) {
    const head = Buffer.allocUnsafe(id === undefined ? 5 : 9);
    head.writeUInt32BE(body.len + head.length - 4);
    head[4] = type;
    if (id !== undefined) head.writeUInt32BE(id >>> 0, 5);
    const packet = Buffer.concat([head, ...body.parts]);
    if (!process.stdout.write(packet) && writable) {
      // The client reads slower than files are read: stop taking requests until the output drains.
      writable = false;
      process.stdin.pause();
      process.stdout.once('drain', () => {
        writable = true;
        process.stdin.resume();
      });
    }
  }
  const status = (id: number, code: number, message: string) =>
    send(T.STATUS, id, out().u32(code).str(message).str('en'));
  function fail(id: number, err: any) {
    const code = err?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return status(id, S.NO_SUCH_FILE, 'No such file');
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return status(id, S.PERMISSION_DENIED, 'Permission denied');
    return status(id, S.FAILURE, String(err?.message ?? err));
  }

  // ── decoding ──
  type In = ReturnType<typeof reader>;
  function reader(b: Buffer) {
    let pos = 0;
    const need = (n: number) => {
      if (pos + n > b.length) throw Object.assign(new Error('short packet'), { bad: true });
    };
    const r = {
      u8() {
        need(1);
        return b[pos++];
      },
      u32() {
        need(4);
        const v = b.readUInt32BE(pos);
        pos += 4;
        return v;
      },
      u64() {
        need(8);
        const v = Number(b.readBigUInt64BE(pos));
        pos += 8;
        return v;
      },
      bytes() {
        const n = r.u32();
        need(n);
        const v = b.subarray(pos, pos + n);
        pos += n;
        return v;
      },
      str() {
        return r.bytes().toString('utf8');
      },
      attrs() {
        const flags = r.u32();
        const a: any = {};
        if (flags & A.SIZE) a.size = r.u64();
        if (flags & A.UIDGID) {
          a.uid = r.u32();
          a.gid = r.u32();
        }
        if (flags & A.PERMISSIONS) a.mode = r.u32();
        if (flags & A.ACMODTIME) {
          a.atime = r.u32();
          a.mtime = r.u32();
        }
        if (flags & A.EXTENDED) {
          const n = r.u32();
          for (let i = 0; i < n; i++) {
            r.str();
            r.str();
          }
        }
        return a;
      },
    };
    return r;
  }

  // ── names for `ls -l` ──
  let users: Map<number, string> | undefined;
  let groups: Map<number, string> | undefined;
  const table = (file: string) => {
    const m = new Map<number, string>();
    try {
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        const f = line.split(':');
        if (f.length > 2 && !m.has(Number(f[2]))) m.set(Number(f[2]), f[0]);
      }
    } catch {
      /* numeric ids then */
    }
    return m;
  };
  function longname(name: string, st: any) {
    users ??= table('/etc/passwd');
    groups ??= table('/etc/group');
    const m = st.mode;
    const kind = (m & 0o170000) === 0o040000 ? 'd' : (m & 0o170000) === 0o120000 ? 'l' : (m & 0o170000) === 0o100000 ? '-' : (m & 0o170000) === 0o020000 ? 'c' : (m & 0o170000) === 0o060000 ? 'b' : (m & 0o170000) === 0o010000 ? 'p' : 's';
    let perms = kind;
    for (let i = 8; i >= 0; i--) perms += m & (1 << i) ? 'rwx'[(8 - i) % 3] : '-';
    const d = new Date(st.mtimeMs);
    const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getMonth()];
    const recent = Math.abs(Date.now() - st.mtimeMs) < 182 * 24 * 3600 * 1000;
    const when = `${mon} ${String(d.getDate()).padStart(2)} ${recent ? `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}` : ` ${d.getFullYear()}`}`;
    const user = (users.get(st.uid) ?? String(st.uid)).padEnd(8);
    const group = (groups.get(st.gid) ?? String(st.gid)).padEnd(8);
    return `${perms} ${String(st.nlink).padStart(4)} ${user} ${group} ${String(st.size).padStart(8)} ${when} ${name}`;
  }

  // ── handles ──
  interface FileHandle {
    fd?: number;
    dir?: { path: string; entries?: string[]; next: number };
    /** Operations on one handle run in order (a close waits for the writes before it). */
    chain: Promise<unknown>;
  }
  const handles = new Map<string, FileHandle>();
  let nextHandle = 1;
  const newHandle = (h: Omit<FileHandle, 'chain'>) => {
    const key = String(nextHandle++);
    handles.set(key, { ...h, chain: Promise.resolve() });
    return key;
  };
  const home = process.env.HOME || '/';
  const abs = (p: string) => pathMod.resolve(home, p === '' ? '.' : p);
  const p = <T>(fn: (cb: (err: any, v?: T) => void) => void) => new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));

  async function applyAttrs(target: { path?: string; fd?: number }, a: any) {
    const { path, fd } = target;
    if (a.size !== undefined) await p((cb) => (fd !== undefined ? fs.ftruncate(fd, a.size, cb) : fs.truncate(path, a.size, cb)));
    if (a.mode !== undefined) await p((cb) => (fd !== undefined ? fs.fchmod(fd, a.mode & 0o7777, cb) : fs.chmod(path, a.mode & 0o7777, cb)));
    if (a.uid !== undefined) await p((cb) => (fd !== undefined ? fs.fchown(fd, a.uid, a.gid, cb) : fs.chown(path, a.uid, a.gid, cb)));
    if (a.mtime !== undefined) await p((cb) => (fd !== undefined ? fs.futimes(fd, a.atime, a.mtime, cb) : fs.utimes(path, a.atime, a.mtime, cb)));
  }

  function onHandle(id: number, key: string, fn: (h: FileHandle) => Promise<void>) {
    const h = handles.get(key);
    if (!h) return status(id, S.FAILURE, 'Invalid handle');
    const run = h.chain.then(() => fn(h)).catch((err) => fail(id, err));
    h.chain = run;
  }

  async function handle(type: number, id: number, r: In): Promise<void> {
    switch (type) {
      case T.OPEN: {
        const path = abs(r.str());
        const pflags = r.u32();
        const a = r.attrs();
        let flags = 0;
        const rd = pflags & 1;
        const wr = pflags & 2;
        flags |= rd && wr ? fs.constants.O_RDWR : wr ? fs.constants.O_WRONLY : fs.constants.O_RDONLY;
        if (pflags & 4) flags |= fs.constants.O_APPEND;
        if (pflags & 8) flags |= fs.constants.O_CREAT;
        if (pflags & 0x10) flags |= fs.constants.O_TRUNC;
        if (pflags & 0x20) flags |= fs.constants.O_EXCL;
        const fd = await p<number>((cb) => fs.open(path, flags, a.mode !== undefined ? a.mode & 0o7777 : 0o666, cb));
        return send(T.HANDLE, id, out().str(newHandle({ fd })));
      }
      case T.CLOSE: {
        const key = r.str();
        return onHandle(id, key, async (h) => {
          handles.delete(key);
          if (h.fd !== undefined) await p((cb) => fs.close(h.fd, cb));
          status(id, S.OK, 'Success');
        });
      }
      case T.READ: {
        const key = r.str();
        const offset = r.u64();
        const len = Math.min(r.u32(), MAX_IO);
        return onHandle(id, key, async (h) => {
          if (h.fd === undefined) return status(id, S.FAILURE, 'Not a file handle');
          const buf = Buffer.allocUnsafe(len);
          const n = await p<number>((cb) => fs.read(h.fd, buf, 0, len, offset, cb));
          if (n === 0) return status(id, S.EOF, 'End of file');
          send(T.DATA, id, out().str(buf.subarray(0, n)));
        });
      }
      case T.WRITE: {
        const key = r.str();
        const offset = r.u64();
        const data = r.bytes();
        return onHandle(id, key, async (h) => {
          if (h.fd === undefined) return status(id, S.FAILURE, 'Not a file handle');
          let done = 0;
          while (done < data.length) done += await p<number>((cb) => fs.write(h.fd, data, done, data.length - done, offset + done, cb));
          status(id, S.OK, 'Success');
        });
      }
      case T.LSTAT:
      case T.STAT: {
        const path = abs(r.str());
        const st = await p((cb) => (type === T.STAT ? fs.stat(path, cb) : fs.lstat(path, cb)));
        return send(T.ATTRS, id, out().attrs(st));
      }
      case T.FSTAT: {
        const key = r.str();
        return onHandle(id, key, async (h) => {
          const st = h.fd !== undefined ? await p((cb) => fs.fstat(h.fd, cb)) : await p((cb) => fs.stat(h.dir!.path, cb));
          send(T.ATTRS, id, out().attrs(st));
        });
      }
      case T.SETSTAT: {
        const path = abs(r.str());
        await applyAttrs({ path }, r.attrs());
        return status(id, S.OK, 'Success');
      }
      case T.FSETSTAT: {
        const key = r.str();
        const a = r.attrs();
        return onHandle(id, key, async (h) => {
          await applyAttrs(h.fd !== undefined ? { fd: h.fd } : { path: h.dir!.path }, a);
          status(id, S.OK, 'Success');
        });
      }
      case T.OPENDIR: {
        const path = abs(r.str());
        const st: any = await p((cb) => fs.stat(path, cb));
        if (!st.isDirectory()) return status(id, S.FAILURE, 'Not a directory');
        // Fails here, not at the first READDIR, when the user may not list it.
        const entries = await p<string[]>((cb) => fs.readdir(path, cb));
        return send(T.HANDLE, id, out().str(newHandle({ dir: { path, entries: ['.', '..', ...entries], next: 0 } })));
      }
      case T.READDIR: {
        const key = r.str();
        return onHandle(id, key, async (h) => {
          if (!h.dir) return status(id, S.FAILURE, 'Not a directory handle');
          const { dir } = h;
          const batch = dir.entries!.slice(dir.next, dir.next + 100);
          dir.next += batch.length;
          if (!batch.length) return status(id, S.EOF, 'End of directory');
          const names = out().u32(0);
          let count = 0;
          for (const name of batch) {
            let st: any;
            try {
              st = await p((cb) => fs.lstat(pathMod.join(dir.path, name), cb));
            } catch {
              continue; // gone since the listing
            }
            names.str(name).str(longname(name, st)).attrs(st);
            count++;
          }
          names.parts[0].writeUInt32BE(count);
          send(T.NAME, id, names);
        });
      }
      case T.REMOVE:
        await p((cb) => fs.unlink(abs(r.str()), cb));
        return status(id, S.OK, 'Success');
      case T.MKDIR: {
        const path = abs(r.str());
        const a = r.attrs();
        await p((cb) => fs.mkdir(path, { mode: a.mode !== undefined ? a.mode & 0o7777 : 0o777 }, cb));
        return status(id, S.OK, 'Success');
      }
      case T.RMDIR:
        await p((cb) => fs.rmdir(abs(r.str()), cb));
        return status(id, S.OK, 'Success');
      case T.REALPATH: {
        const raw = r.str();
        let resolved = abs(raw);
        try {
          resolved = await p<string>((cb) => fs.realpath(resolved, cb));
        } catch {
          /* OpenSSH canonicalises paths that do not exist yet too (the target of an upload) */
        }
        return send(T.NAME, id, out().u32(1).str(resolved).str(resolved).u32(0));
      }
      case T.RENAME: {
        const from = abs(r.str());
        const to = abs(r.str());
        // SFTP v3 rename must not replace an existing target (posix-rename@openssh.com does).
        const exists = await p((cb) => fs.lstat(to, cb)).then(() => true, () => false);
        if (exists) return status(id, S.FAILURE, 'Target exists');
        await p((cb) => fs.rename(from, to, cb));
        return status(id, S.OK, 'Success');
      }
      case T.READLINK: {
        const target = await p<string>((cb) => fs.readlink(abs(r.str()), cb));
        return send(T.NAME, id, out().u32(1).str(target).str(target).u32(0));
      }
      case T.SYMLINK: {
        // OpenSSH sends (target, link), the reverse of the draft; its clients are what connect here.
        const target = r.str();
        const link = abs(r.str());
        await p((cb) => fs.symlink(target, link, cb));
        return status(id, S.OK, 'Success');
      }
      case T.EXTENDED: {
        const name = r.str();
        switch (name) {
          case 'posix-rename@openssh.com':
            await p((cb) => fs.rename(abs(r.str()), abs(r.str()), cb));
            return status(id, S.OK, 'Success');
          case 'hardlink@openssh.com':
            await p((cb) => fs.link(abs(r.str()), abs(r.str()), cb));
            return status(id, S.OK, 'Success');
          case 'fsync@openssh.com': {
            const key = r.str();
            return onHandle(id, key, async (h) => {
              if (h.fd !== undefined) await p((cb) => fs.fsync(h.fd, cb));
              status(id, S.OK, 'Success');
            });
          }
          case 'limits@openssh.com':
            return send(T.EXTENDED_REPLY, id, out().u64(MAX_PACKET).u64(MAX_IO).u64(MAX_IO).u64(0));
          case 'expand-path@openssh.com': {
            let path = r.str();
            if (path === '~') path = home;
            else if (path.startsWith('~/')) path = pathMod.join(home, path.slice(2));
            else if (path.startsWith('~')) return status(id, S.NO_SUCH_FILE, 'Only ~ of the sandbox user is known');
            const resolved = abs(path);
            return send(T.NAME, id, out().u32(1).str(resolved).str(resolved).u32(0));
          }
          default:
            return status(id, S.OP_UNSUPPORTED, `Unsupported extension ${name}`);
        }
      }
      default:
        return status(id, S.OP_UNSUPPORTED, 'Unsupported request');
    }
  }

  // ── packet loop ──
  let buffered: Buffer[] = [];
  let bufferedLen = 0;
  let inFlight = 0;
  let ended = false;
  const finishIfDone = () => {
    if (!ended || inFlight) return;
    const chains = [...handles.values()].map((h) => h.chain);
    void Promise.allSettled(chains).then(() => {
      for (const h of handles.values()) if (h.fd !== undefined) fs.closeSync(h.fd);
      process.exit(0);
    });
  };
  function onPacket(packet: Buffer) {
    const r = reader(packet);
    const type = r.u8();
    if (type === T.INIT) {
      const version = out().u32(3);
      for (const [k, v] of [
        ['posix-rename@openssh.com', '1'],
        ['hardlink@openssh.com', '1'],
        ['fsync@openssh.com', '1'],
        ['limits@openssh.com', '1'],
        ['expand-path@openssh.com', '1'],
      ])
        version.str(k).str(v);
      return send(T.VERSION, undefined, version);
    }
    let id = 0;
    try {
      id = r.u32();
    } catch {
      return;
    }
    inFlight++;
    handle(type, id, r)
      .catch((err) => (err?.bad ? status(id, S.BAD_MESSAGE, 'Malformed request') : fail(id, err)))
      .finally(() => {
        inFlight--;
        finishIfDone();
      });
  }
  process.stdin.on('data', (chunk: Buffer) => {
    buffered.push(chunk);
    bufferedLen += chunk.length;
    while (bufferedLen >= 4) {
      let all = buffered.length === 1 ? buffered[0] : Buffer.concat(buffered);
      const len = all.readUInt32BE(0);
      if (len > MAX_PACKET || len < 1) process.exit(1);
      if (all.length < 4 + len) {
        buffered = [all];
        return;
      }
      onPacket(all.subarray(4, 4 + len));
      all = all.subarray(4 + len);
      buffered = all.length ? [all] : [];
      bufferedLen = all.length;
    }
  });
  process.stdin.on('end', () => {
    ended = true;
    finishIfDone();
  });
  process.stdout.on('error', () => process.exit(0));
}

/**
 * Arguments for the bundled Node that run the SFTP server: its source arrives on fd 3 (so `ps` shows a short command
 * line), and it is given Node's own `require`.
 */
export const SFTP_HELPER_ARGS = ['-e', "eval(require('node:fs').readFileSync(3, 'utf8'))"];

/**
 * Source text for fd 3. `__name` is what esbuild's keepNames (tsx, vitest) wraps functions in; defined here so the
 * text runs whichever way this module was compiled.
 */
export const sftpHelperSource = (): string => `var __name = (f) => f;\n(${sftpServerMain.toString()})(require);`;
