// A test certificate authority for the stand-ins of external services (APNs, FCM, Lambda, ...).
//
// Generated with openssl once per test process, in a temporary directory removed at exit: a CA key
// and self-signed CA certificate, and a server certificate for 127.0.0.1 / localhost signed by that
// CA. The server is told to trust the CA through CARILLON_OUTBOUND_CA_FILE = testCa().caFile (the
// server certificate itself is not a CA, so trusting it alone would not do: the chain is real).
// clientCert(name) issues a client certificate (TLS client auth, e.g. APNs certificate auth) signed
// by the same CA.
//
//   import { testCa } from './lib/test-ca.mjs';
//   const ca = testCa();
//   http2.createSecureServer({ key: ca.serverKey, cert: ca.serverCert, ca: ca.caCert }, ...);
//   startCarillon({ env: { CARILLON_OUTBOUND_CA_FILE: ca.caFile } });

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let ca = null;

function openssl(args, input) {
  try {
    return execFileSync('openssl', args, { input, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`openssl ${args[0]} failed (scripts/install-deps.sh installs openssl): ${e.stderr ?? e.message}`);
  }
}

/** Issue a key + certificate signed by the CA. san: "IP:127.0.0.1,DNS:localhost" or null. */
function issue(dir, name, subject, { san = null, clientAuth = false } = {}) {
  const keyFile = path.join(dir, `${name}.key`);
  const csrFile = path.join(dir, `${name}.csr`);
  const certFile = path.join(dir, `${name}.pem`);
  const extFile = path.join(dir, `${name}.ext`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  openssl(['req', '-new', '-key', keyFile, '-subj', subject, '-out', csrFile]);
  const ext = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${clientAuth ? 'clientAuth' : 'serverAuth'}`];
  if (san) ext.push(`subjectAltName=${san}`);
  writeFileSync(extFile, ext.join('\n') + '\n');
  openssl(['x509', '-req', '-in', csrFile, '-CA', path.join(dir, 'ca.pem'), '-CAkey', path.join(dir, 'ca.key'),
    '-CAcreateserial', '-days', '2', '-sha256', '-extfile', extFile, '-out', certFile]);
  return { keyFile, certFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}

/**
 * The per-process test CA: {dir, caFile, caCert, serverKeyFile, serverCertFile, serverKey, serverCert}.
 * caCert/serverKey/serverCert are PEM strings.
 */
export function testCa() {
  if (ca) return ca;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'carillon-ca-'));
  process.on('exit', () => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {}
  });
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.pem');
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', caKey]);
  openssl(['req', '-x509', '-new', '-key', caKey, '-sha256', '-days', '2', '-subj', '/CN=Carillon test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', caFile]);
  const server = issue(dir, 'server', '/CN=127.0.0.1', { san: 'IP:127.0.0.1,DNS:localhost' });
  // A server started as root drops to its service user (privdrop): the CA file must be readable by
  // anyone (it is a certificate; the keys beside it stay the test process's own).
  chmodSync(dir, 0o755);
  chmodSync(caFile, 0o644);
  ca = {
    dir,
    caFile,
    caCert: readFileSync(caFile, 'utf8'),
    serverKeyFile: server.keyFile,
    serverCertFile: server.certFile,
    serverKey: server.key,
    serverCert: server.cert,
  };
  return ca;
}

let clients = 0;

/** A client certificate signed by the test CA: {keyFile, certFile, key, cert} (PEM, unencrypted key). */
export function clientCert(commonName = 'carillon test client') {
  const { dir } = testCa();
  return issue(dir, `client${++clients}`, `/CN=${commonName.replace(/[/=]/g, ' ')}`, { clientAuth: true });
}

/** A P-256 private key in PKCS#8 PEM (the form of Apple's .p8 token keys) and its public half. */
export function ecKeyPair() {
  const pkcs8 = openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']).toString('utf8');
  const pub = openssl(['pkey', '-pubout'], pkcs8).toString('utf8');
  return { privateKeyPem: pkcs8, publicKeyPem: pub };
}
