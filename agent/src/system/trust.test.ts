import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { trustCa } from './trust';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----';

describe('trustCa', () => {
  it("adds the CA to the system bundle once, copies it for everyone, and names both in the environment", () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'trust-'));
    mkdirSync(path.join(root, 'etc/ssl/certs'), { recursive: true });
    writeFileSync(path.join(root, 'etc/ssl/certs/ca-certificates.crt'), 'existing\n');
    writeFileSync(path.join(root, 'ca.pem'), PEM);
    const env = trustCa(path.join(root, 'ca.pem'), root);
    trustCa(path.join(root, 'ca.pem'), root);
    const bundle = readFileSync(path.join(root, 'etc/ssl/certs/ca-certificates.crt'), 'utf8');
    expect(bundle.startsWith('existing\n')).toBe(true);
    expect(bundle.split('BEGIN CERTIFICATE')).toHaveLength(2);
    const local = path.join(root, 'usr/local/share/ca-certificates/cove-egress-ca.crt');
    expect(statSync(local).mode & 0o777).toBe(0o644);
    expect(env).toEqual({
      NODE_EXTRA_CA_CERTS: '/usr/local/share/ca-certificates/cove-egress-ca.crt',
      SSL_CERT_FILE: '/etc/ssl/certs/ca-certificates.crt',
      REQUESTS_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt',
      CURL_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt',
    });
  });

  it('names only the copy where the system has no bundle, and refuses what is not a certificate', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'trust-'));
    writeFileSync(path.join(root, 'ca.pem'), PEM);
    expect(trustCa(path.join(root, 'ca.pem'), root)).toEqual({ NODE_EXTRA_CA_CERTS: '/usr/local/share/ca-certificates/cove-egress-ca.crt' });
    writeFileSync(path.join(root, 'bad.pem'), 'not a certificate');
    expect(() => trustCa(path.join(root, 'bad.pem'), root)).toThrow(/not a PEM certificate/);
  });
});
