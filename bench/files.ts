/**
 * Files benchmark: upload and download of a 1 GiB file through a real agent over loopback HTTP, each beside `cp` of
 * the same file in the same run (cp reads and writes the same bytes on the same disk). curl is the HTTP client. Reports throughput, the
 * ratio to cp, and the agent's peak RSS (VmHWM) after every transfer.
 *
 *   npx tsx bench/files.ts            (COVE_CLI=dist-files/cli.mjs to use another bundle)
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { startAgent } from '../test/helpers/agent';
import { printTable, stats } from './lib';

const run = promisify(execFile);
const SIZE = 1 << 30;
const RUNS = 3;
const MB = 1e6;

/** Writes `size` bytes of incompressible data by streaming one reused block. */
async function makeFile(file: string, size: number): Promise<void> {
  const block = randomBytes(1 << 20);
  async function* blocks() {
    for (let i = 0; i < size / block.length; i++) {
      block.writeUInt32LE(i, 0);
      yield Buffer.from(block);
    }
  }
  await pipeline(Readable.from(blocks()), createWriteStream(file));
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function main() {
  const scratch = path.join(os.tmpdir(), `cove-bench-files-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  const agent = await startAgent();
  try {
    const source = path.join(scratch, 'source.bin');
    await makeFile(source, SIZE);
    const target = path.join(agent.workdir, 'uploaded.bin');

    const cp = async () => {
      const dst = path.join(scratch, 'cp.bin');
      const t = process.hrtime.bigint();
      execFileSync('cp', [source, dst]);
      const s = seconds(t);
      rmSync(dst);
      return s;
    };
    // curl as the client: a native HTTP stack, so the figures measure the agent rather than the bench's own Node.
    const upload = async () => {
      const t = process.hrtime.bigint();
      const { stdout } = await run('curl', ['-sS', '-w', '%{http_code}', '-o', '/dev/null', '-H', `Authorization: Bearer ${agent.token}`,
        '-F', `file=@${source}`, `${agent.url}/files/upload?path=${encodeURIComponent(target)}`]);
      const s = seconds(t);
      if (stdout.trim() !== '200') throw new Error(`upload failed: ${stdout}`);
      return s;
    };
    const download = async () => {
      const dst = path.join(scratch, 'downloaded.bin');
      const t = process.hrtime.bigint();
      const { stdout } = await run('curl', ['-sS', '-w', '%{http_code}', '-o', dst, '-H', `Authorization: Bearer ${agent.token}`,
        `${agent.url}/files/download?path=${encodeURIComponent(target)}`]);
      const s = seconds(t);
      if (stdout.trim() !== '200' || statSync(dst).size !== SIZE) throw new Error(`download failed: ${stdout}`);
      rmSync(dst);
      return s;
    };

    const samples = { cp: [] as number[], up: [] as number[], down: [] as number[] };
    // Interleaved, so cache and disk state drift the same way for every method.
    for (let i = 0; i < RUNS; i++) {
      samples.cp.push(await cp());
      samples.up.push(await upload());
      samples.down.push(await download());
    }
    const rate = (s: number[]) => SIZE / MB / stats(s).p50;
    const cpRate = rate(samples.cp);
    const rss = peakRssMb(agent.process.pid!);
    printTable(`Files: 1 GiB transfers through the agent (median of ${RUNS}, loopback)`, [
      { name: 'upload (multipart, to disk)', value: rate(samples.up), unit: 'MB/s', baseline: cpRate, baselineName: 'cp', target: '≥ 0.5× cp', ok: rate(samples.up) >= cpRate / 2 },
      { name: 'download (to disk)', value: rate(samples.down), unit: 'MB/s', baseline: cpRate, baselineName: 'cp', target: '≥ 0.5× cp', ok: rate(samples.down) >= cpRate / 2 },
      { name: 'agent peak RSS (VmHWM)', value: rss, unit: 'MB', target: '< 150 MB', ok: rss < 150 },
    ]);
    console.log(
      `\nruns (s): cp ${samples.cp.map((s) => s.toFixed(2)).join(' ')} · upload ${samples.up.map((s) => s.toFixed(2)).join(' ')} · ` +
        `download ${samples.down.map((s) => s.toFixed(2)).join(' ')}\n` +
        'cp copies inside the kernel (copy_file_range, page cache to page cache); every HTTP transfer also crosses a ' +
        'loopback socket twice, with the client (curl) and the agent sharing the same cores.',
    );
  } finally {
    await agent.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
