/**
 * Files benchmark: upload and download of a 1 GiB file through a real agent over loopback HTTP, each beside `cp` of
 * the same file in the same run (cp reads and writes the same bytes on the same disk). curl is the HTTP client.
 * Reports throughput, the ratio to cp, and the agent's peak RSS (VmHWM) after every transfer.
 *
 * cp is not a reachable bar for HTTP: it copies inside the kernel (copy_file_range, page cache to page cache, one
 * copy), while an HTTP upload copies the bytes five times (curl reads, sends; the agent receives, Node's HTTP parser
 * copies the body, the write fills the page cache). So a second baseline is measured in the same run: a plain Node
 * HTTP server (pipeline from the request to fs.createWriteStream, and from fs.createReadStream to the response)
 * moving the same bytes with the same curl commands. The distance to it is Cove's own overhead. CPU seconds of the
 * server process per transfer are reported too: on a shared 2-core machine they are far less noisy than wall time.
 *
 *   npx tsx bench/files.ts            (COVE_CLI=dist-files/cli.mjs to use another bundle)
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startAgent } from '../test/helpers/agent';
import { makeFile, printTable, stats } from './lib';

const run = promisify(execFile);
const SIZE = 1 << 30;
const RUNS = 3;
const MB = 1e6;

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

/** User + system CPU seconds a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The baseline server: what plain Node does with streams and no framework. */
const PLAIN_SERVER = `
const { createServer } = require('node:http');
const { createReadStream, createWriteStream, statSync } = require('node:fs');
const { pipeline } = require('node:stream/promises');
const server = createServer(async (req, res) => {
  const file = new URL(req.url, 'http://x').searchParams.get('path');
  try {
    if (req.method === 'POST') {
      await pipeline(req, createWriteStream(file));
      res.end('ok');
    } else {
      res.writeHead(200, { 'Content-Length': statSync(file).size });
      await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), res);
    }
  } catch (err) {
    res.destroy(err);
  }
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function main() {
  const scratch = path.join(os.tmpdir(), `cove-bench-files-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  const agent = await startAgent();
  const plain = spawn(process.execPath, ['-e', PLAIN_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const plainUrl = await new Promise<string>((resolve) => plain.stdout!.once('data', (d) => resolve(`http://127.0.0.1:${String(d).trim()}`)));
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
    // curl as the client: a native HTTP stack, so the figures measure the server rather than the bench's own Node.
    // Each transfer returns [wall seconds, server CPU seconds].
    const curl = async (server: number, args: string[], check?: () => void): Promise<[number, number]> => {
      const cpu = cpuSeconds(server);
      const t = process.hrtime.bigint();
      const { stdout } = await run('curl', ['-sS', '-w', '%{http_code}', ...args]);
      const s = seconds(t);
      if (!stdout.trim().endsWith('200')) throw new Error(`transfer failed (${args.at(-1)}): ${stdout}`);
      check?.();
      return [s, cpuSeconds(server) - cpu];
    };
    const auth = ['-H', `Authorization: Bearer ${agent.token}`];
    const rawBody = ['-H', 'Content-Type: application/octet-stream', '-X', 'POST', '-T', source];
    const downloaded = path.join(scratch, 'downloaded.bin');
    const checkDownload = () => {
      if (statSync(downloaded).size !== SIZE) throw new Error('download is short');
      rmSync(downloaded);
    };
    const agentPid = agent.process.pid!;
    const plainTarget = path.join(scratch, 'plain.bin');
    const transfers = {
      upload: () => curl(agentPid, ['-o', '/dev/null', ...auth, '-F', `file=@${source}`, `${agent.url}/files/upload?path=${encodeURIComponent(target)}`]),
      uploadRaw: () => curl(agentPid, ['-o', '/dev/null', ...auth, ...rawBody, `${agent.url}/files/upload-v2?path=${encodeURIComponent(target)}`]),
      download: () => curl(agentPid, ['-o', downloaded, ...auth, `${agent.url}/files/download?path=${encodeURIComponent(target)}`], checkDownload),
      plainUpload: () => curl(plain.pid!, ['-o', '/dev/null', ...rawBody, `${plainUrl}/?path=${encodeURIComponent(plainTarget)}`]),
      plainDownload: () => curl(plain.pid!, ['-o', downloaded, `${plainUrl}/?path=${encodeURIComponent(plainTarget)}`], checkDownload),
    };

    const samples = { cp: [] as number[] } as Record<'cp' | keyof typeof transfers, number[]>;
    const cpu = {} as Record<keyof typeof transfers, number[]>;
    // Interleaved, so cache and disk state drift the same way for every method.
    for (let i = 0; i < RUNS; i++) {
      samples.cp.push(await cp());
      for (const [name, transfer] of Object.entries(transfers) as [keyof typeof transfers, () => Promise<[number, number]>][]) {
        const [s, c] = await transfer();
        (samples[name] ??= []).push(s);
        (cpu[name] ??= []).push(c);
      }
    }
    const rate = (s: number[]) => SIZE / MB / stats(s).p50;
    const cpRate = rate(samples.cp);
    const rss = peakRssMb(agent.process.pid!);
    const med = (xs: number[]) => stats(xs).p50;
    const vsCp = (name: string, key: keyof typeof transfers) => ({
      name, value: rate(samples[key]), unit: 'MB/s', baseline: cpRate, baselineName: 'cp', target: '≥ 0.5× cp', ok: rate(samples[key]) >= cpRate / 2,
    });
    const vsPlain = (name: string, key: keyof typeof transfers, base: keyof typeof transfers) => ({
      name, value: rate(samples[key]), unit: 'MB/s', baseline: rate(samples[base]), baselineName: 'plain Node',
    });
    const cpuRow = (name: string, key: keyof typeof transfers, base: keyof typeof transfers) => ({
      name, value: med(cpu[key]), unit: 's', baseline: med(cpu[base]), baselineName: 'plain Node',
    });
    printTable(`Files: 1 GiB transfers through the agent (median of ${RUNS}, loopback)`, [
      vsCp('upload (multipart, to disk)', 'upload'),
      vsCp('upload (raw body, upload-v2)', 'uploadRaw'),
      vsCp('download (to disk)', 'download'),
      vsPlain('upload multipart vs plain Node raw', 'upload', 'plainUpload'),
      vsPlain('upload raw vs plain Node raw', 'uploadRaw', 'plainUpload'),
      vsPlain('download vs plain Node', 'download', 'plainDownload'),
      cpuRow('server CPU per upload (multipart)', 'upload', 'plainUpload'),
      cpuRow('server CPU per upload (raw)', 'uploadRaw', 'plainUpload'),
      cpuRow('server CPU per download', 'download', 'plainDownload'),
      { name: 'agent peak RSS (VmHWM)', value: rss, unit: 'MB', target: '< 150 MB', ok: rss < 150 },
    ]);
    const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ');
    console.log(
      `\nruns (s): cp ${list(samples.cp)} · upload ${list(samples.upload)} · raw ${list(samples.uploadRaw)} · download ${list(samples.download)} · ` +
        `plain up ${list(samples.plainUpload)} · plain down ${list(samples.plainDownload)}\n` +
        'cp copies inside the kernel (copy_file_range, page cache to page cache); every HTTP transfer also crosses a ' +
        'loopback socket twice, with the client (curl) and the server sharing the same cores.',
    );
  } finally {
    await agent.stop();
    plain.kill();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
