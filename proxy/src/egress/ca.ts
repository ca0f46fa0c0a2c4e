import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import * as x509 from '@peculiar/x509';

/**
 * Cove's egress CA: one per deployment (its key and certificate in the data dir), trusted by every sandbox (the agent
 * installs it: `--trust-ca`), so the egress proxy can terminate the TLS of requests to a mounted secret's hosts and put
 * the secret's value in them. Certificates for those hosts are made on first use (ECDSA P-256, by @peculiar/x509)
 * and kept; nothing but the proxy ever holds the CA's key.
 */
export interface EgressCa {
  /** The CA certificate (PEM), what sandboxes trust. */
  certPem: string;
  /** A TLS server context presenting a certificate for `host`, signed by the CA. */
  contextFor(host: string): Promise<SecureContext>;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
/** Host certificates live a week and are made anew after six days; at most this many are kept. */
const LEAF_DAYS = 7;
const MAX_LEAVES = 1000;

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const toPem = (der: ArrayBuffer, label: string): string =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;
const fromPem = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
const serial = (): string => `01${randomBytes(15).toString('hex')}`;

/** Writes a file whole or not at all (aside, then renamed), readable by its owner only. */
function writePrivate(file: string, text: string): void {
  const aside = `${file}.${process.pid}.tmp`;
  writeFileSync(aside, text, { mode: 0o600 });
  renameSync(aside, file);
}

export async function loadEgressCa(dataDir: string): Promise<EgressCa> {
  const certFile = path.join(dataDir, 'egress-ca.pem');
  const keyFile = path.join(dataDir, 'egress-ca.key');
  let caKey: CryptoKey;
  let caCert: x509.X509Certificate;
  if (existsSync(certFile) && existsSync(keyFile)) {
    caCert = new x509.X509Certificate(readFileSync(certFile, 'utf8'));
    caKey = await webcrypto.subtle.importKey('pkcs8', fromPem(readFileSync(keyFile, 'utf8')), ALG, false, ['sign']);
  } else {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    caKey = keys.privateKey;
    caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=Cove egress CA ${randomBytes(4).toString('hex')}, O=Cove`,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 3650 * DAY),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    // The key first: a certificate without its key would be read back as a CA that cannot sign.
    writePrivate(keyFile, toPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'));
    writePrivate(certFile, caCert.toString('pem'));
  }
  const certPem = caCert.toString('pem');
  const authorityKeyId = await x509.AuthorityKeyIdentifierExtension.create(caCert);

  // One key for every host certificate: made once per process.
  const leafKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const leafKeyPem = toPem(await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey), 'PRIVATE KEY');
  const leaves = new Map<string, { until: number; context: Promise<SecureContext> }>();

  async function makeContext(host: string): Promise<SecureContext> {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${host}`,
      issuer: caCert.subject,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + LEAF_DAYS * DAY),
      signingKey: caKey,
      publicKey: leafKeys.publicKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }]),
        authorityKeyId,
      ],
    });
    return createSecureContext({ key: leafKeyPem, cert: `${cert.toString('pem')}\n${certPem}`, ALPNProtocols: ['http/1.1'] } as Parameters<typeof createSecureContext>[0]);
  }

  return {
    certPem,
    contextFor(host) {
      const now = Date.now();
      const hit = leaves.get(host);
      if (hit && hit.until > now) return hit.context;
      const context = makeContext(host);
      leaves.delete(host);
      if (leaves.size >= MAX_LEAVES) leaves.delete(leaves.keys().next().value!);
      leaves.set(host, { until: now + (LEAF_DAYS - 1) * DAY, context });
      context.catch(() => leaves.get(host)?.context === context && leaves.delete(host));
      return context;
    },
  };
}
