import { execFileSync } from 'node:child_process';
import { closeSync, linkSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageWalk } from './disk-usage';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'cove-usage-'));
});
afterEach(() => {
  // GNU rm walks by file descriptor: it removes paths longer than any single call can name.
  execFileSync('rm', ['-rf', root]);
});

/** What GNU du says the tree takes, in bytes (the reference the walk must agree with). */
const du = (dir: string): number => Number(execFileSync('du', ['-s', '-B1', '-x', dir], { encoding: 'utf8' }).split(/\s/)[0]);

async function measure(walk: UsageWalk, budget = 1_000_000): Promise<number> {
  while (!walk.done) await walk.step(budget);
  return walk.bytes;
}

/** Writes `bytes` of real data (not a hole). */
function writeData(file: string, bytes: number): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 7);
  for (let left = bytes; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, left));
  closeSync(fd);
}

describe('UsageWalk', () => {
  it('counts what files take on disk, as du does: data, directories, not holes, hard links once', async () => {
    mkdirSync(path.join(root, 'a/b'), { recursive: true });
    writeData(path.join(root, 'a/data'), 3 * 1024 * 1024);
    writeData(path.join(root, 'a/b/linked'), 1024 * 1024);
    linkSync(path.join(root, 'a/b/linked'), path.join(root, 'a/link2'));
    linkSync(path.join(root, 'a/b/linked'), path.join(root, 'link3'));
    // A sparse file of 1 GiB that wrote 4 KiB.
    const fd = openSync(path.join(root, 'sparse'), 'w');
    writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 1024 ** 3 - 4096);
    closeSync(fd);
    for (let i = 0; i < 50; i++) writeFileSync(path.join(root, `small-${i}`), 'x');

    const bytes = await measure(new UsageWalk(root));
    expect(bytes).toBe(du(root));
    expect(bytes).toBeGreaterThan(4 * 1024 * 1024);
    expect(bytes).toBeLessThan(5 * 1024 * 1024);
  });

  it('does at most the work it is given per step, and the steps add up to one walk', async () => {
    for (let d = 0; d < 10; d++) {
      mkdirSync(path.join(root, `d${d}`));
      for (let f = 0; f < 30; f++) writeFileSync(path.join(root, `d${d}/f${f}`), 'data');
    }
    const walk = new UsageWalk(root);
    let steps = 0;
    while (!walk.done) {
      const used = await walk.step(7);
      expect(used).toBeLessThanOrEqual(7);
      steps++;
    }
    expect(walk.entries).toBe(310);
    expect(steps).toBeGreaterThanOrEqual(Math.ceil(310 / 7));
    expect(walk.bytes).toBe(du(root));
  });

  it('hands subtrees deeper than it keeps open, and paths too long to name, to du', async () => {
    // 30 levels: the walk keeps 16 open and lets du measure below.
    let dir = root;
    for (let i = 0; i < 30; i++) {
      dir = path.join(dir, `level-${i}`);
      mkdirSync(dir);
      writeData(path.join(dir, 'f'), 8192);
    }
    const subtrees: string[] = [];
    const walk = new UsageWalk(root, (parent, name) => {
      subtrees.push(name);
      return Promise.resolve(du(path.join(parent, name)));
    });
    expect(await measure(walk)).toBe(du(root));
    expect(subtrees).toEqual(['level-15']);

    // Under a long prefix, paths pass 4096 bytes 14 levels down, before the depth limit: no call takes such a path by
    // name (ENAMETOOLONG), but du gets there from the parent.
    rmSync(path.join(root, 'level-0'), { recursive: true });
    const name = 'n'.repeat(250);
    const top = path.join(root, 'p'.repeat(250), 'q'.repeat(250), 'r'.repeat(250));
    mkdirSync(top, { recursive: true });
    // Made by relative mkdir and chdir, as a program in the sandbox would (a shell's cd keeps a PWD that cannot grow so).
    const script = `const fs = require('fs'); for (let i = 0; i < 20; i++) { fs.mkdirSync('${name}'); process.chdir('${name}'); } fs.writeFileSync('deep', require('crypto').randomBytes(1048576));`;
    execFileSync(process.execPath, ['-e', script], { cwd: top });
    const depths: number[] = [];
    const deep = new UsageWalk(top, (parent, child) => {
      depths.push(path.relative(top, parent).split('/').length);
      return Promise.resolve(Number(execFileSync('du', ['-s', '-B1', '-x', '--', child], { cwd: parent, encoding: 'utf8' }).split(/\s/)[0]));
    });
    const total = await measure(deep);
    expect(deep.unmeasured).toEqual([]);
    expect(depths).toEqual([13]);
    expect(total).toBe(du(top));
    expect(total).toBeGreaterThan(1024 * 1024);

    // The same with the real du of the walk itself.
    expect(await measure(new UsageWalk(top))).toBe(total);
  });

  it('ends without a total when the tree is gone, and releases its handles when closed', async () => {
    const gone = new UsageWalk(path.join(root, 'missing'));
    await gone.step(10);
    expect(gone.done).toBe(true);
    expect(gone.failed).toMatch(/not a directory/);

    mkdirSync(path.join(root, 'x/y/z'), { recursive: true });
    const walk = new UsageWalk(root);
    await walk.step(2);
    expect(walk.done).toBe(false);
    walk.close();
    expect(walk.done).toBe(true);
    expect(await walk.step(10)).toBe(0);
  });
});
