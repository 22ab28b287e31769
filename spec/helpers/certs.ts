/**
 * A throwaway private CA and server certificates for TLS tests, made with the openssl CLI
 * (spec/net/deps.sh installs it) in a temporary directory removed at exit.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Paths and PEM text of a CA and one server certificate signed by it. */
export interface TestPki {
  dir: string;
  caCert: string;
  caPem: string;
  cert: string;
  key: string;
  /** A second server certificate from a different CA (for "wrong CA" cases). */
  otherCert: string;
  otherKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes a CA and a server certificate for `names` (DNS names and IP addresses). */
export function makePki(names: string[] = ['localhost', '127.0.0.1']): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'postern-pki-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  for (const ca of ['ca', 'other-ca']) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=postern test ${ca}`], dir);
  }
  for (const [name, ca] of [
    ['server', 'ca'],
    ['other', 'other-ca'],
  ] as const) {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${names[0]}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', 'ext.cnf'], dir);
  }
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server.key'),
    otherCert: join(dir, 'other.pem'),
    otherKey: join(dir, 'other.key'),
  };
}
