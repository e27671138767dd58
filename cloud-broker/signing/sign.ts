import { sign, type KeyObject } from 'node:crypto';
import { canonicalJson, keyIdOf, type SignedEnvelope, type TrustedKey } from '../../protocol/signing.js';

/** The cloud's signing identity: an ed25519 private key and its public half. */
export interface Signer {
  readonly keyid: string;
  /** PEM SPKI, as agent.json's trustedKeys carry it. */
  readonly publicKeyPem: string;
  /** Signs canonicalJson(signed); the result is what goes on the wire. */
  sign<T>(signed: T): SignedEnvelope<T>;
  /** The entry a device puts in trustedKeys. */
  trustedKey(): TrustedKey;
}

export function createSigner(privateKey: KeyObject, publicKey: KeyObject): Signer {
  const keyid = keyIdOf(publicKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    keyid,
    publicKeyPem,
    sign<T>(signed: T): SignedEnvelope<T> {
      const bytes = Buffer.from(canonicalJson(signed), 'utf8');
      return { signed, signatures: [{ keyid, sig: sign(null, bytes, privateKey).toString('base64') }] };
    },
    trustedKey: () => ({ keyid, publicKey: publicKeyPem }),
  };
}
