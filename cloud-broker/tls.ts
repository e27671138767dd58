import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { pemCertificates } from '../protocol/agent-config.js';
import { OutpostError } from '../protocol/errors/index.js';

/** PEM texts for the broker's TLS listener, and where each came from (for messages). */
export interface TlsMaterial {
  /** The server certificate, optionally followed by its intermediates. */
  cert: string;
  key: string;
  /** The CA that devices must trust; absent = a self-signed cert is its own CA, else the system's CAs. */
  ca?: string;
  sources?: { cert?: string; key?: string; ca?: string };
}

export interface CheckedTls {
  cert: string;
  key: string;
  /** What `device provision` writes as `cloud.ca`: null when devices use their system CAs. */
  deviceCa: string | null;
  /** With no deviceCa: whether Node's bundled public roots trust the cert (else devices likely will not). */
  publiclyTrusted: boolean | null;
  leaf: X509Certificate;
}

const MAX_PEM_BYTES = 256 * 1024;

function invalid(source: string, reason: string, flag: string): OutpostError {
  return new OutpostError('CLOUD_TLS_INVALID', `${flag} ${source}: ${reason}`, { flag, source, reason });
}

function parseCerts(pem: string, source: string, flag: string): X509Certificate[] {
  const blocks = pemCertificates(pem);
  if (blocks.length === 0)
    throw invalid(
      source,
      'has no PEM certificate ("-----BEGIN CERTIFICATE-----"); give the certificate file, not the key or a DER file',
      flag,
    );
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw invalid(source, `certificate ${i + 1} is not readable X.509 (${(err as Error).message})`, flag);
    }
  });
}

function issues(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/**
 * Validates the broker's TLS material once, before anything listens: the key opens, belongs to
 * the certificate, and the CA given to devices really issued it (through the intermediates in the
 * cert file). A mistake here would otherwise show up only as every device failing its handshake.
 */
export function checkTlsMaterial(m: TlsMaterial): CheckedTls {
  const src = { cert: m.sources?.cert ?? '(certificate)', key: m.sources?.key ?? '(key)', ca: m.sources?.ca ?? '(CA)' };
  const chain = parseCerts(m.cert, src.cert, '--tls-cert');
  const leaf = chain[0];
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(m.key));
  } catch (err) {
    throw invalid(src.key, `is not a readable unencrypted PEM private key (${(err as Error).message})`, '--tls-key');
  }
  if (!matches)
    throw invalid(
      src.key,
      `is not the private key of the certificate in ${src.cert} (${leaf.subject.replace(/\n/g, ', ')})`,
      '--tls-key',
    );

  let deviceCa: string | null;
  if (m.ca !== undefined) {
    const anchors = parseCerts(m.ca, src.ca, '--tls-ca');
    if (!chainsTo(chain, anchors)) {
      throw invalid(
        src.ca,
        `did not issue the certificate in ${src.cert} (issuer: ${leaf.issuer.replace(/\n/g, ', ')}); devices given this CA would refuse the broker`,
        '--tls-ca',
      );
    }
    deviceCa = pemCertificates(m.ca).join('\n') + '\n';
  } else {
    // A self-signed certificate is its own trust anchor; one from a public CA needs nothing.
    deviceCa = issues(leaf, leaf) ? pemCertificates(m.cert)[0] + '\n' : null;
  }
  const publiclyTrusted =
    deviceCa === null
      ? chainsTo(
          chain,
          rootCertificates.map((r) => new X509Certificate(r)),
        )
      : null;
  return { cert: m.cert, key: m.key, deviceCa, publiclyTrusted, leaf };
}

/** True when some anchor issued the leaf, directly or through the intermediates after it. */
function chainsTo(chain: X509Certificate[], anchors: X509Certificate[]): boolean {
  let current = chain[0];
  const intermediates = chain.slice(1);
  for (let depth = 0; depth <= intermediates.length; depth++) {
    if (anchors.some((a) => issues(current, a))) return true;
    const next = intermediates.find((i) => i !== current && issues(current, i));
    if (!next) return false;
    current = next;
  }
  return false;
}

/** Reads the PEM files named on the command line (bounded: a wrong path to a huge file must not hang). */
export async function readTlsFiles(files: { cert: string; key: string; ca?: string }): Promise<TlsMaterial> {
  const read = async (file: string, flag: string): Promise<string> => {
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (err) {
      throw invalid(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, flag);
    }
    if (buf.length > MAX_PEM_BYTES)
      throw invalid(file, `is ${buf.length} bytes; a PEM file is at most ${MAX_PEM_BYTES}`, flag);
    return buf.toString('utf8');
  };
  return {
    cert: await read(files.cert, '--tls-cert'),
    key: await read(files.key, '--tls-key'),
    ca: files.ca === undefined ? undefined : await read(files.ca, '--tls-ca'),
    sources: files,
  };
}

/** Whether the certificate names the host devices are told to connect to (an IP or a DNS name). */
export function certCoversHost(leaf: X509Certificate, host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return (isIP(h) ? leaf.checkIP(h) : leaf.checkHost(h)) !== undefined;
}
