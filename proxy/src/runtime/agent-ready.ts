import http from 'node:http';

/** Result of one probe: ready, wrong token (never going to work), or not yet. */
type Probe = 'ready' | 'unauthorized' | 'not-ready';

/** Pause between probes. Connecting to a port nobody listens on yet is answered at once (RST), so this is cheap. */
const POLL_INTERVAL_MS = 10;
/** One probe may not hang the loop (a SYN to an address that went away is never answered). */
const PROBE_TIMEOUT_MS = 1000;

/**
 * One `GET /version`, with the bearer token or without (then a 401 only says the agent listens), on a fresh connection
 * (a pooled one could belong to a dead container).
 */
function probeAgent(ip: string, port: number, token: string | undefined): Promise<Probe> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: ip, port, path: '/version', method: 'GET', agent: false, timeout: PROBE_TIMEOUT_MS, headers: token ? { Authorization: `Bearer ${token}` } : {} },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? 'ready' : res.statusCode === 401 ? 'unauthorized' : 'not-ready');
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve('not-ready'));
    req.end();
  });
}

/**
 * Polls until the agent answers 200. `checkAlive` runs now and then (it may throw to abort, e.g. when the container
 * exited); returns the reason it gave up, or undefined once ready. With `whenListening`, the agent is first asked
 * without the token until it answers at all (it has read its token by then), `whenListening` runs, and only then
 * comes the first request with the token (which releases a held entrypoint).
 */
export async function pollAgent(opts: {
  ip: string;
  port: number;
  token: string;
  timeoutMs: number;
  checkAlive?: () => Promise<void>;
  checkEveryMs?: number;
  whenListening?: () => Promise<void>;
  /** Return once the agent listens (after `whenListening`), without a request with the token. */
  untilListening?: boolean;
}): Promise<'timeout' | 'unauthorized' | undefined> {
  const deadline = Date.now() + opts.timeoutMs;
  let nextCheck = Date.now() + (opts.checkEveryMs ?? 250);
  let listening = !opts.whenListening;
  for (;;) {
    const probe = await probeAgent(opts.ip, opts.port, listening ? opts.token : undefined);
    if (!listening && probe !== 'not-ready') {
      listening = true;
      await opts.whenListening!();
      if (opts.untilListening) return undefined;
      continue;
    }
    if (probe === 'ready') return undefined;
    if (probe === 'unauthorized') return 'unauthorized';
    if (Date.now() >= deadline) return 'timeout';
    if (opts.checkAlive && Date.now() >= nextCheck) {
      await opts.checkAlive();
      nextCheck = Date.now() + (opts.checkEveryMs ?? 250);
    }
    await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
}

/** Splits the engine's multiplexed log stream (8-byte frame headers, non-TTY containers) into text. */
export function demuxLogs(buf: Buffer): string {
  let out = '';
  let offset = 0;
  // A TTY container's logs are raw; a frame header starts with stream 0-2 followed by three zero bytes.
  const framed = buf.length >= 8 && buf[0] <= 2 && buf[1] === 0 && buf[2] === 0 && buf[3] === 0;
  if (!framed) return buf.toString('utf8');
  while (offset + 8 <= buf.length) {
    const size = buf.readUInt32BE(offset + 4);
    out += buf.subarray(offset + 8, offset + 8 + size).toString('utf8');
    offset += 8 + size;
  }
  return out;
}
