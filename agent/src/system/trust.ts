import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Trust for one more CA (Cove's egress CA, which signs the certificates the egress proxy presents for hosts whose
 * requests get secrets substituted): added to the system's trust store the ways distributions keep it, and the
 * variables that Node, Python's requests and curl read pointed at it. Runs once as root at the agent's start; the
 * environment it returns is what every process the agent starts inherits.
 */

/** Where the CA is copied for everyone to read (Debian's and Alpine's folder of local CAs). */
const LOCAL_CA = 'usr/local/share/ca-certificates/cove-egress-ca.crt';
/** The bundles distributions read (Debian/Ubuntu/Alpine, Fedora/RHEL, openSUSE/Alpine's alias). */
const BUNDLES = ['etc/ssl/certs/ca-certificates.crt', 'etc/pki/tls/certs/ca-bundle.crt', 'etc/ssl/ca-bundle.pem', 'etc/ssl/cert.pem'];

export function trustCa(pemFile: string, root = '/'): Record<string, string> {
  const pem = readFileSync(pemFile, 'utf8').trim();
  if (!/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----$/.test(pem)) throw new Error(`${pemFile} is not a PEM certificate`);
  const local = path.join(root, LOCAL_CA);
  mkdirSync(path.dirname(local), { recursive: true });
  writeFileSync(local, `${pem}\n`);
  chmodSync(local, 0o644);
  let bundle: string | undefined;
  for (const rel of BUNDLES) {
    const file = path.join(root, rel);
    if (!existsSync(file)) continue;
    // Appended once: a restarted container finds it there already.
    if (!readFileSync(file, 'utf8').includes(pem)) appendFileSync(file, `\n${pem}\n`);
    bundle ??= `/${rel}`;
  }
  const env: Record<string, string> = { NODE_EXTRA_CA_CERTS: `/${LOCAL_CA}` };
  // Python's requests and curl read a bundle of their own unless told; pointed at the system's, which now holds it.
  if (bundle) Object.assign(env, { SSL_CERT_FILE: bundle, REQUESTS_CA_BUNDLE: bundle, CURL_CA_BUNDLE: bundle });
  return env;
}
