/**
 * `/metrics` of a real `cove serve`: admin keys only on the main port, the Prometheus text format, and the counts
 * moving as the published SDK creates a sandbox from the warm pool and calls its toolbox, as a preview is relayed and
 * refused and as the real OpenSSH client logs in; `--metrics-listen` serves the same without a key.
 */
import type { Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent';
import { startCove, type TestCove } from '../helpers/cove';
import { previewFetch, toolbox } from '../helpers/preview';
import { sshCommand, sshPortOf } from '../helpers/ssh-client';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition; a line that is neither a comment nor a sample fails the test. */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples of `name` whose labels include `labels` (undefined when there is none). */
function valueOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const matching = samples(text).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return matching.length ? matching.reduce((sum, s) => sum + s.value, 0) : undefined;
}

let cove: TestCove;
let sandbox: Sandbox;

async function scrape(key: string | null = cove.apiKey): Promise<string> {
  const res = await fetch(`${cove.url}/metrics`, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text}`);
  return text;
}

describe('metrics', () => {
  beforeAll(async () => {
    cove = await startCove({ pool: 1, args: ['--metrics-listen', '127.0.0.1:0'] });
    await waitFor(async () => ((await (await cove.api('/pool')).json()) as { ready: number }).ready === 1, 60_000, 'a ready pool member');
  }, 20 * 60_000);
  afterAll(async () => {
    await cove?.destroy();
  });

  it('answers only admin API keys, with the error envelope otherwise', async () => {
    const none = await fetch(`${cove.url}/metrics`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'UNAUTHORIZED', source: 'DAYTONA_API' });
    expect((await fetch(`${cove.url}/metrics`, { headers: { Authorization: 'Bearer not-a-key-of-this-server' } })).status).toBe(401);
    const other = await fetch(`${cove.url}/metrics`, { headers: { Authorization: `Bearer ${cove.newKey('not-admin').key}` } });
    expect(other.status).toBe(403);
    expect(await other.json()).toMatchObject({ code: 'FORBIDDEN', source: 'DAYTONA_API' });
    const admin = await fetch(`${cove.url}/metrics`, { headers: { Authorization: `Bearer ${cove.apiKey}` } });
    expect(admin.status).toBe(200);
    expect(admin.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await admin.text();
    // Node's process metrics, prefixed; the pool as configured.
    expect(valueOf(text, 'cove_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(valueOf(text, 'cove_pool_target', { pool: 'default' })).toBe(1);
    expect(valueOf(text, 'cove_pool_ready', { pool: 'default' })).toBe(1);
    expect(valueOf(text, 'cove_sandboxes', { state: 'started' })).toBe(0);
  });

  it('counts a create from the warm pool, sandboxes by state, and API and toolbox requests', async () => {
    const before = await scrape();
    sandbox = await cove.daytona().create();
    expect((await sandbox.process.executeCommand('echo hi')).result.trim()).toBe('hi');
    const after = await scrape();
    expect(valueOf(after, 'cove_sandboxes', { state: 'started' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(after, 'cove_pool_hits_total')! - valueOf(before, 'cove_pool_hits_total')!).toBe(1);
    expect(valueOf(after, 'cove_pool_misses_total')).toBe(valueOf(before, 'cove_pool_misses_total'));
    const created = (t: string) => valueOf(t, 'cove_sandbox_create_seconds_count', { source: 'pool' })!;
    expect(created(after) - created(before)).toBe(1);
    // A pool hit answers well under the top bucket.
    expect(valueOf(after, 'cove_sandbox_create_seconds_bucket', { source: 'pool', le: '5' })).toBe(created(after));
    const requests = (t: string, family: string) => valueOf(t, 'cove_http_requests_total', { family, status_class: '2xx' })!;
    expect(requests(after, 'api')).toBeGreaterThan(requests(before, 'api'));
    expect(requests(after, 'toolbox')).toBeGreaterThan(requests(before, 'toolbox'));
    expect(valueOf(after, 'cove_http_request_duration_seconds_count', { family: 'toolbox' })).toBeGreaterThanOrEqual(1);
    // Refusals are counted as 4xx of their family.
    const refused = (t: string) => valueOf(t, 'cove_http_requests_total', { family: 'api', status_class: '4xx' })!;
    const base = refused(after);
    expect((await cove.api('/sandbox', { key: null })).status).toBe(401);
    expect(refused(await scrape())).toBe(base + 1);
  });

  it('counts preview requests relayed to the app and refused before it', async () => {
    await toolbox(cove, sandbox.id).serve('python3 -m http.server 8000', 8000);
    const { url, token } = (await (await cove.api(`/sandbox/${sandbox.id}/ports/8000/preview-url`)).json()) as { url: string; token: string };
    const before = await scrape();
    expect((await previewFetch(`${url}/`, { headers: { 'X-Daytona-Preview-Token': token } })).status).toBe(200);
    expect((await previewFetch(`${url}/`)).status).toBe(401);
    const after = await scrape();
    const outcome = (t: string, o: string) => valueOf(t, 'cove_preview_requests_total', { outcome: o })!;
    expect(outcome(after, 'relayed') - outcome(before, 'relayed')).toBe(1);
    expect(outcome(after, 'refused') - outcome(before, 'refused')).toBe(1);
    const family = (t: string, c: string) => valueOf(t, 'cove_http_requests_total', { family: 'preview', status_class: c })!;
    expect(family(after, '2xx') - family(before, '2xx')).toBe(1);
    expect(family(after, '4xx') - family(before, '4xx')).toBe(1);
  });

  it('counts SSH sessions opened, and the ones open now', async () => {
    const { token } = (await (await cove.api(`/sandbox/${sandbox.id}/ssh-access`, { method: 'POST' })).json()) as { token: string };
    const before = await scrape();
    const result = await sshCommand(sshPortOf(cove), token, 'echo over-ssh');
    expect(result.stdout.trim()).toBe('over-ssh');
    await waitFor(async () => valueOf(await scrape(), 'cove_ssh_sessions') === 0, 10_000, 'the SSH session to close');
    const after = await scrape();
    expect(valueOf(after, 'cove_ssh_sessions_opened_total')! - valueOf(before, 'cove_ssh_sessions_opened_total')!).toBe(1);
  });

  it('serves /metrics without a key on --metrics-listen, named in the ready line', async () => {
    const url = /metrics on (http:\/\/[^\s,)]+)/.exec(cove.output())?.[1];
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    expect(valueOf(await res.text(), 'cove_sandboxes', { state: 'started' })).toBeGreaterThanOrEqual(1);
    const elsewhere = await fetch(url!.replace(/\/metrics$/, '/api/sandbox'));
    expect(elsewhere.status).toBe(404);
    expect(await elsewhere.json()).toMatchObject({ code: 'NOT_FOUND' });
  });
});
