import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePools, readProxyConfig } from './config';

describe('readProxyConfig', () => {
  it('has defaults for everything but the key', () => {
    expect(readProxyConfig([], {}, '/srv')).toEqual({
      host: '0.0.0.0',
      port: 3000,
      dataDir: path.join(os.homedir(), '.cove'),
      previewDomain: 'localhost',
      sshPort: 2222,
      pool: 2,
      snapshotPools: [],
      apiKey: undefined,
      publicUrl: undefined,
      image: 'cove-sandbox:latest',
      network: 'cove',
      logLevel: 'info',
      corsOrigins: [],
      allowPrivateEgress: false,
      dnsServers: [],
      diskCheckInterval: 5,
      minuteMs: 60_000,
      runtime: 'runc',
      limits: { maxSandboxes: 10, maxCpu: 10, maxMemory: 10, maxDisk: 100, maxSandboxCpu: 4, maxSandboxMemory: 8, maxSandboxDisk: 10 },
    });
  });

  it('reads the default limits of API keys from flags over the environment; "unlimited" turns one off', () => {
    const env = { COVE_MAX_SANDBOXES: '20', COVE_MAX_CPU: 'unlimited', COVE_MAX_SANDBOX_DISK: '50' };
    expect(readProxyConfig(['--max-sandboxes', '3', '--max-memory', '0'], env, '/').limits).toEqual({
      maxSandboxes: 3,
      maxCpu: null,
      maxMemory: 0,
      maxDisk: 100,
      maxSandboxCpu: 4,
      maxSandboxMemory: 8,
      maxSandboxDisk: 50,
    });
  });

  it('lets sandboxes reach private ranges only when asked, by flag or environment', () => {
    expect(readProxyConfig(['--allow-private-egress'], {}, '/').allowPrivateEgress).toBe(true);
    expect(readProxyConfig([], { COVE_ALLOW_PRIVATE_EGRESS: 'yes' }, '/').allowPrivateEgress).toBe(true);
    expect(readProxyConfig([], { COVE_ALLOW_PRIVATE_EGRESS: '0' }, '/').allowPrivateEgress).toBe(false);
    expect(() => readProxyConfig([], { COVE_ALLOW_PRIVATE_EGRESS: 'maybe' }, '/')).toThrow(/COVE_ALLOW_PRIVATE_EGRESS: maybe is not/);
  });

  it("reads the egress services' name servers, and refuses what is not an IPv4 address with an optional port", () => {
    expect(readProxyConfig(['--dns-server', '10.0.0.2, 127.0.0.1:5353'], {}, '/').dnsServers).toEqual(['10.0.0.2', '127.0.0.1:5353']);
    expect(readProxyConfig([], { COVE_DNS_SERVER: '1.1.1.1' }, '/').dnsServers).toEqual(['1.1.1.1']);
    expect(() => readProxyConfig(['--dns-server', 'dns.example.com'], {}, '/')).toThrow(/dns-server: dns.example.com is not an IPv4 address/);
    expect(() => readProxyConfig(['--dns-server', '10.0.0.256'], {}, '/')).toThrow(/dns-server/);
    expect(() => readProxyConfig(['--dns-server', '10.0.0.2:0'], {}, '/')).toThrow(/dns-server/);
  });

  it('reads the disk watchdog interval in seconds, and refuses one that is not positive', () => {
    expect(readProxyConfig(['--disk-check-interval', '0.5'], { COVE_DISK_CHECK_INTERVAL: '30' }, '/').diskCheckInterval).toBe(0.5);
    expect(readProxyConfig([], { COVE_DISK_CHECK_INTERVAL: '30' }, '/').diskCheckInterval).toBe(30);
    expect(() => readProxyConfig(['--disk-check-interval', '0'], {}, '/')).toThrow(/diskCheckInterval/);
    expect(() => readProxyConfig(['--disk-check-interval', 'often'], {}, '/')).toThrow(/diskCheckInterval/);
  });

  it('runs sandboxes under runc unless runsc is asked for, by flag or environment', () => {
    expect(readProxyConfig(['--runtime', 'runsc'], {}, '/').runtime).toBe('runsc');
    expect(readProxyConfig([], { COVE_RUNTIME: 'runsc' }, '/').runtime).toBe('runsc');
    expect(readProxyConfig(['--runtime', 'runc'], { COVE_RUNTIME: 'runsc' }, '/').runtime).toBe('runc');
    expect(() => readProxyConfig(['--runtime', 'kata'], {}, '/')).toThrow(/^runtime: kata is not a runtime Cove knows \(runc or runsc\)/);
  });

  it('serves /metrics on a listener of its own only when --metrics-listen or COVE_METRICS_LISTEN gives HOST:PORT', () => {
    expect(readProxyConfig([], {}, '/').metricsListen).toBeUndefined();
    expect(readProxyConfig([], { COVE_METRICS_LISTEN: '' }, '/').metricsListen).toBeUndefined();
    expect(readProxyConfig(['--metrics-listen', '127.0.0.1:9100'], { COVE_METRICS_LISTEN: '10.0.0.5:9200' }, '/').metricsListen).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(readProxyConfig([], { COVE_METRICS_LISTEN: '10.0.0.5:9200' }, '/').metricsListen).toEqual({ host: '10.0.0.5', port: 9200 });
    expect(readProxyConfig(['--metrics-listen', '[::1]:0'], {}, '/').metricsListen).toEqual({ host: '::1', port: 0 });
    expect(readProxyConfig(['--metrics-listen', 'metrics.internal:9100'], {}, '/').metricsListen).toEqual({ host: 'metrics.internal', port: 9100 });
    for (const bad of ['9100', ':9100', '127.0.0.1', '127.0.0.1:99999', '::1:9100', 'host:port']) {
      expect(() => readProxyConfig(['--metrics-listen', bad], {}, '/')).toThrow(/^metrics-listen: .* is not HOST:PORT/);
    }
  });

  it('takes flags over the environment, and data dirs relative to the working dir', () => {
    const env = { COVE_PORT: '4000', COVE_POOL: '5', COVE_DATA_DIR: 'from-env', COVE_API_KEY: 'k'.repeat(16), COVE_LOG_LEVEL: 'warn' };
    const config = readProxyConfig(['--port', '0', '--data-dir', 'data', '--pool', '0'], env, '/srv');
    expect(config).toMatchObject({ port: 0, pool: 0, dataDir: '/srv/data', apiKey: 'k'.repeat(16), logLevel: 'warn' });
    expect(readProxyConfig([], env, '/srv')).toMatchObject({ port: 4000, pool: 5, dataDir: '/srv/from-env' });
  });

  it('normalizes CORS origins and drops duplicates', () => {
    expect(readProxyConfig(['--cors-origins', 'https://A.example, https://a.example:443,,http://localhost:5173/'], {}, '/').corsOrigins).toEqual([
      'https://a.example',
      'http://localhost:5173',
    ]);
    expect(readProxyConfig([], { COVE_CORS_ORIGINS: '*' }, '/').corsOrigins).toEqual(['*']);
  });

  it('refuses invalid values with a sentence naming the field', () => {
    expect(() => readProxyConfig(['--port', '70000'], {}, '/')).toThrow(/^port: /);
    expect(() => readProxyConfig(['--pool', 'many'], {}, '/')).toThrow(/^pool: /);
    expect(() => readProxyConfig([], { COVE_API_KEY: 'short' }, '/')).toThrow(/COVE_API_KEY must be at least 16 characters/);
    expect(() => readProxyConfig([], { COVE_SECRET_KEY: 's'.repeat(31) }, '/')).toThrow(/COVE_SECRET_KEY must be at least 32 characters/);
    expect(readProxyConfig([], { COVE_SECRET_KEY: 's'.repeat(32) }, '/').secretKey).toBe('s'.repeat(32));
    expect(() => readProxyConfig(['--log-level', 'loud'], {}, '/')).toThrow(/^logLevel: /);
    expect(() => readProxyConfig(['--public-url', 'not a url'], {}, '/')).toThrow(/^publicUrl: /);
    expect(() => readProxyConfig(['--cors-origins', 'https://a.example/path'], {}, '/')).toThrow(/cors-origins: https:\/\/a.example\/path is not an origin/);
    expect(() => readProxyConfig(['--unknown'], {}, '/')).toThrow();
    expect(() => readProxyConfig(['--max-cpu', 'lots'], {}, '/')).toThrow(/^max-cpu: lots is not a whole number/);
    expect(() => readProxyConfig([], { COVE_MAX_DISK: '-5' }, '/')).toThrow(/^max-disk: /);
  });

  it('reads warm pools of snapshots from repeated --pool flags, else from COVE_POOL as a list', () => {
    const flags = readProxyConfig(['--pool', '0', '--pool', 'my-snap=3', '--pool', 'tools/py:3.12@alice=1,other@k_1=0'], { COVE_POOL: '5' }, '/');
    expect(flags.pool).toBe(0);
    expect(flags.snapshotPools).toEqual([
      { snapshot: 'my-snap', size: 3 },
      { snapshot: 'tools/py:3.12', key: 'alice', size: 1 },
      { snapshot: 'other', key: 'k_1', size: 0 },
    ]);
    const env = readProxyConfig([], { COVE_POOL: '2, my-snap=3' }, '/');
    expect(env.pool).toBe(2);
    expect(env.snapshotPools).toEqual([{ snapshot: 'my-snap', size: 3 }]);
    expect(readProxyConfig([], { COVE_POOL: 'my-snap=1' }, '/')).toMatchObject({ pool: 2, snapshotPools: [{ snapshot: 'my-snap', size: 1 }] });
  });

  it('refuses pools it cannot read, naming the entry', () => {
    expect(() => parsePools(['x=-1'], 'img')).toThrow(/size of the pool of x must be a whole number/);
    expect(() => parsePools(['two'], 'img')).toThrow(/size of the default pool must be a whole number/);
    expect(() => parsePools(['=3'], 'img')).toThrow(/is not NAME=N or NAME@KEY=N/);
    expect(() => parsePools(['a@=3'], 'img')).toThrow(/is not NAME=N or NAME@KEY=N/);
    expect(() => parsePools(['My-Snap=1'], 'img')).toThrow(/is not a snapshot name/);
    expect(() => parsePools(['a=1', 'a=2'], 'img')).toThrow(/a is given twice/);
    expect(parsePools(['a=1', 'a@k=2'], 'img').snapshotPools).toHaveLength(2);
    expect(() => parsePools(['cove-sandbox:latest=2'], 'cove-sandbox:latest')).toThrow(/is the default image/);
    expect(() => readProxyConfig(['--pool', 'x=1001'], {}, '/')).toThrow(/from 0 to 1000/);
  });
});
