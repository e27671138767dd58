import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { missingCommand } from '../helpers/requires.js';

const run = promisify(execFile);

/** null when the openssl command runs, otherwise why not (for skipForPackage). */
export const missingOpenssl = (): string | null => missingCommand('openssl', ['version']);

export interface TestPki {
  dir: string;
  caCert: string;
  caKey: string;
  /** Signed by the CA for IP 127.0.0.1 and DNS localhost. */
  serverCert: string;
  serverKey: string;
  /** A second, unrelated CA (for "wrong CA" cases). */
  otherCaCert: string;
  /** Signed by an intermediate CA that `ca` signed: leaf then intermediate, and the leaf alone. */
  chainedCert: string;
  chainedLeafOnly: string;
  chainedKey: string;
  /** Self-signed, for 127.0.0.1. */
  selfCert: string;
  selfKey: string;
  read(file: string): Promise<string>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd, timeout: 30_000 });
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=Outpost test ${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

/**
 * A private CA and a server certificate for 127.0.0.1, made with the real openssl in `dir`
 * (P-256 keys: fast to generate), plus an unrelated CA and a self-signed certificate.
 */
export async function makeTestPki(dir: string): Promise<TestPki> {
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  await writeFile(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  await openssl(
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=127.0.0.1',
    ],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-set_serial',
      '0x' + Date.now().toString(16),
      '-days',
      '2',
      '-extfile',
      'server.ext',
      '-out',
      'server.crt',
    ],
    dir,
  );
  // ca -> inter -> chained leaf, to check that the CA is found through intermediates.
  await writeFile(join(dir, 'inter.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  await openssl(
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'inter.key',
      '-out',
      'inter.csr',
      '-subj',
      '/CN=Outpost test intermediate',
    ],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'inter.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-set_serial',
      '0x' + (Date.now() + 1).toString(16),
      '-days',
      '2',
      '-extfile',
      'inter.ext',
      '-out',
      'inter.crt',
    ],
    dir,
  );
  await openssl(
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'chained.key',
      '-out',
      'chained.csr',
      '-subj',
      '/CN=127.0.0.1',
    ],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'chained.csr',
      '-CA',
      'inter.crt',
      '-CAkey',
      'inter.key',
      '-set_serial',
      '0x' + (Date.now() + 2).toString(16),
      '-days',
      '2',
      '-extfile',
      'server.ext',
      '-out',
      'chained-leaf.crt',
    ],
    dir,
  );
  await writeFile(
    join(dir, 'chained.crt'),
    (await readFile(join(dir, 'chained-leaf.crt'), 'utf8')) + (await readFile(join(dir, 'inter.crt'), 'utf8')),
  );
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'self.key',
      '-out',
      'self.crt',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    dir,
  );
  const p = (f: string) => join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    otherCaCert: p('other-ca.crt'),
    chainedCert: p('chained.crt'),
    chainedLeafOnly: p('chained-leaf.crt'),
    chainedKey: p('chained.key'),
    selfCert: p('self.crt'),
    selfKey: p('self.key'),
    read: (file) => readFile(file, 'utf8'),
  };
}
