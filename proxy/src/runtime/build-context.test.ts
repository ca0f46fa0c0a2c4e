import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildContext, CONTEXT_DOCKERFILE, tarEntries } from './build-context';

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(c);
  return Buffer.concat(parts);
}

/** A tar archive by GNU tar of `files` (path → content), in chunks of `chunk` bytes as a stream would bring them. */
function archive(files: Record<string, Buffer | string>, chunk = 700): () => Promise<AsyncIterable<Buffer>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cove-ctx-'));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  const tar = execFileSync('tar', ['-c', '-f', '-', '-C', dir, ...Object.keys(files)]);
  const chunks: Buffer[] = [];
  for (let i = 0; i < tar.length; i += chunk) chunks.push(tar.subarray(i, i + chunk));
  return () => Promise.resolve(Readable.from(chunks));
}

const read = (tar: Buffer, name: string) => execFileSync('tar', ['-x', '-O', '-f', '-', name], { input: tar });

describe('buildContext', () => {
  it('is a tar archive holding the Dockerfile alone when there are no uploads', async () => {
    for (const dockerfile of ['FROM a\nRUN echo ü > /x\n', 'x'.repeat(512), 'FROM b\n'.repeat(300)]) {
      const tar = await collect(buildContext(dockerfile, []));
      expect(tar.length % 512).toBe(0);
      expect(execFileSync('tar', ['-t', '-f', '-'], { input: tar, encoding: 'utf8' })).toBe(`${CONTEXT_DOCKERFILE}\n`);
      expect(read(tar, CONTEXT_DOCKERFILE).toString('utf8')).toBe(dockerfile);
    }
  });

  it('joins the files of several archives, bodies of zeros and long names included, byte for byte', async () => {
    const zeros = Buffer.alloc(4096);
    const long = `${'d'.repeat(120)}/${'f'.repeat(150)}.txt`;
    const tar = await collect(
      buildContext('FROM x\nCOPY . /\n', [archive({ 'abs/src/a.txt': 'one', 'abs/src/zeros.bin': zeros }, 333), archive({ [long]: 'long name', 'b.txt': 'two' }, 10_000)]),
    );
    const names = execFileSync('tar', ['-t', '-f', '-'], { input: tar, encoding: 'utf8' }).trim().split('\n');
    expect(names).toEqual(expect.arrayContaining([CONTEXT_DOCKERFILE, 'abs/src/a.txt', 'abs/src/zeros.bin', long, 'b.txt']));
    expect(read(tar, 'abs/src/a.txt').toString()).toBe('one');
    expect(read(tar, 'abs/src/zeros.bin').equals(zeros)).toBe(true);
    expect(read(tar, long).toString()).toBe('long name');
    expect(read(tar, 'b.txt').toString()).toBe('two');
  });
});

describe('tarEntries', () => {
  it('refuses bytes that are not a whole tar archive', async () => {
    const whole = await collect(await archive({ 'a.txt': 'x'.repeat(2000) })());
    const from = (buf: Buffer) =>
      collect(
        tarEntries(Readable.from([buf])),
      );
    await expect(from(whole.subarray(0, 1500))).rejects.toThrow(/ends in the middle/);
    await expect(from(whole.subarray(0, 512 + 2048))).rejects.toThrow(/no end-of-archive/);
    await expect(from(Buffer.alloc(1024, 'a'))).rejects.toThrow(/not a tar archive/);
    expect((await from(whole)).length).toBe(512 + 2048);
  });
});
