import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../agent/fs/atomic-file.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { keyIdOf, type TrustedKey } from '../../protocol/signing.js';
import {
  legacyRoot,
  ONLINE_ROLE,
  parseRoot,
  revokedOf,
  serializeRoot,
  updateRoot,
  type RootMetadata,
} from '../../protocol/trust-root.js';
import { loadOrCreateSigner } from './keys.js';
import { signRoot } from './root-keys.js';
import { createSigner, type Signer } from './sign.js';

/**
 * The cloud's half of the root of trust (docs/security.md, "Keys"). It holds only what must be
 * online: the online signing key(s) and the public root chain. Root private keys never reach it;
 * the CLI signs each new root with them, and this service checks the result by the same TUF rules
 * a device applies (updateRoot) before storing and serving it, so a root that devices would refuse
 * is refused here first.
 *
 *   <dataDir>/signing/desired.key          the first online key (also the legacy key of old devices)
 *   <dataDir>/signing/online/<keyid>.key   online keys made by rotate-online
 *   <dataDir>/signing/roots/<N>.root.json  the root chain, served at /v1/trust/root/<N>.json
 *
 * `signer` always signs with the online key of the newest root (the legacy key before `keys init`).
 */
export interface TrustStatus {
  initialized: boolean;
  version: number;
  expires: string | null;
  threshold: number;
  rootKeys: string[];
  onlineKeys: TrustedKey[];
  revoked: string[];
  /** The newest root document, as devices fetch it (null before `keys init`). */
  root: Record<string, unknown> | null;
}

interface Held {
  privateKey: KeyObject;
  signer: Signer;
}

export class TrustService {
  private readonly held = new Map<string, Held>();
  private readonly chain = new Map<number, string>();
  private latest: RootMetadata | null = null;
  private current: Signer;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;
  /** Delegates to the current online key, so holders of it (the fleet) follow rotations. */
  readonly signer: Signer;

  private constructor(
    private readonly dir: string,
    private readonly legacy: Signer,
    log: Logger,
  ) {
    this.log = moduleLogger(log, 'trust');
    this.current = legacy;
    const self = this;
    this.signer = {
      get keyid() {
        return self.current.keyid;
      },
      get publicKeyPem() {
        return self.current.publicKeyPem;
      },
      sign: (signed) => self.current.sign(signed),
      trustedKey: () => self.current.trustedKey(),
    };
  }

  static async open(dataDir: string, log: Logger): Promise<TrustService> {
    const legacy = await loadOrCreateSigner(dataDir, log);
    const svc = new TrustService(path.join(dataDir, 'signing'), legacy, log);
    await svc.hold(path.join(dataDir, 'signing', 'desired.key'));
    for (const name of await readdirOrEmpty(path.join(svc.dir, 'online')))
      if (/^[0-9a-f]{64}\.key$/.test(name)) await svc.hold(path.join(svc.dir, 'online', name));
    await svc.loadChain();
    return svc;
  }

  /** The newest root's version, or 1 (the implicit legacy root) before `keys init`. */
  get version(): number {
    return this.latest?.signed.version ?? 1;
  }

  rootJson(version: number): string | null {
    return this.chain.get(version) ?? null;
  }

  /** What `device provision` writes as trustedRoot: the newest root, or nothing before `keys init`. */
  provisionRoot(): Record<string, unknown> | undefined {
    return this.latest ? (JSON.parse(serializeRoot(this.latest)) as Record<string, unknown>) : undefined;
  }

  status(): TrustStatus {
    const root = this.latest ?? legacyRoot([this.legacy.trustedKey()]);
    const s = root.signed;
    return {
      initialized: this.latest !== null,
      version: s.version,
      expires: this.latest ? s.expires : null,
      threshold: s.roles.root.threshold,
      rootKeys: [...s.roles.root.keyIDs],
      onlineKeys: s.roles[ONLINE_ROLE].keyIDs.map((id) => ({ keyid: id, publicKey: s.keys[id].keyVal.public })),
      revoked: [...revokedOf(root)],
      root: this.provisionRoot() ?? null,
    };
  }

  /** A new online key, kept here (0600); it signs once a root that names it is installed. */
  async createOnlineKey(): Promise<TrustedKey> {
    const { privateKey } = generateKeyPairSync('ed25519');
    const keyid = keyIdOf(createPublicKey(privateKey));
    const file = path.join(this.dir, 'online', `${keyid}.key`);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    const held = await this.hold(file);
    this.log.info({ keyid }, 'created an online key (not used until a root names it)');
    return held.signer.trustedKey();
  }

  /**
   * Checks a root signed by the CLI and makes it the newest: version N+1, a threshold of root N's
   * keys and of its own (the legacy key co-signs the first one, as root v1's only key), an online
   * key held here, not expired. Returns whether the online key changed (then every desired state
   * must be signed again).
   */
  installRoot(input: unknown): Promise<{ version: number; onlineChanged: boolean }> {
    const run = this.queue.then(() => this.install(input));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async install(input: unknown): Promise<{ version: number; onlineChanged: boolean }> {
    const next = parseRoot(input);
    const first = this.latest === null;
    const trusted = this.latest ?? this.legacyV1();
    if (first && next.signed.version !== 2)
      throw new OutpostError(
        'TRUST_ROOT_VERSION',
        `the first root after the legacy root v1 must be version 2, got ${next.signed.version}`,
      );
    // Keys of the trusted root that live here (only the legacy key) sign where its threshold needs them.
    for (const id of trusted.signed.roles.root.keyIDs) {
      const h = this.held.get(id);
      if (h && !next.signatures[id]) signRoot(next, { keyid: id, privateKey: h.privateKey });
    }
    const verified = updateRoot(trusted, serializeRoot(next));
    if (verified.signed.isExpired())
      throw new OutpostError(
        'TRUST_ROOT_EXPIRED',
        `root v${verified.signed.version} expired at ${verified.signed.expires}`,
      );
    const online = verified.signed.roles[ONLINE_ROLE].keyIDs.find((id) => this.held.has(id));
    if (!online)
      throw new OutpostError(
        'TRUST_KEY_UNKNOWN',
        `root v${verified.signed.version} names online key(s) whose private key this cloud does not hold; make one with POST /v1/trust/online-keys (outpost keys rotate-online does)`,
      );
    if (first) await this.store(trusted);
    await this.store(verified);
    const onlineChanged = online !== this.current.keyid;
    this.latest = verified;
    this.current = this.held.get(online)!.signer;
    this.log.info({ version: verified.signed.version, online, onlineChanged }, 'installed a new root');
    return { version: verified.signed.version, onlineChanged };
  }

  /** Root v1 as old devices imply it from their single key, signed by that key. */
  private legacyV1(): RootMetadata {
    const v1 = legacyRoot([this.legacy.trustedKey()]);
    signRoot(v1, { keyid: this.legacy.keyid, privateKey: this.held.get(this.legacy.keyid)!.privateKey });
    return v1;
  }

  private async store(root: RootMetadata): Promise<void> {
    const json = serializeRoot(root);
    const file = path.join(this.dir, 'roots', `${root.signed.version}.root.json`);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, json, { mode: 0o644 });
    this.chain.set(root.signed.version, json);
  }

  private async hold(file: string): Promise<Held> {
    const privateKey = createPrivateKey(await fs.readFile(file, 'utf8'));
    const signer = createSigner(privateKey, createPublicKey(privateKey));
    const held = { privateKey, signer };
    this.held.set(signer.keyid, held);
    return held;
  }

  /** Re-verifies the stored chain from v1 at start: a chain that a device would refuse is never served. */
  private async loadChain(): Promise<void> {
    const dir = path.join(this.dir, 'roots');
    const versions = (await readdirOrEmpty(dir))
      .map((n) => /^(\d+)\.root\.json$/.exec(n)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    if (versions.length === 0) return;
    let root = parseRoot(await fs.readFile(path.join(dir, '1.root.json')));
    this.chain.set(1, serializeRoot(root));
    for (let v = 2; v <= versions[versions.length - 1]; v++) {
      root = updateRoot(root, await fs.readFile(path.join(dir, `${v}.root.json`)));
      this.chain.set(v, serializeRoot(root));
    }
    this.latest = root;
    const days = (Date.parse(root.signed.expires) - Date.now()) / 86_400_000;
    if (days < 30)
      this.log.warn(
        { version: root.signed.version, expires: root.signed.expires },
        'the root of trust expires within 30 days: devices then refuse new desired states; renew it with `outpost keys rotate-online`',
      );
    const online = root.signed.roles[ONLINE_ROLE].keyIDs.find((id) => this.held.has(id));
    if (online) this.current = this.held.get(online)!.signer;
    else
      this.log.error(
        { version: root.signed.version },
        'no online key of the newest root is held; signing with the legacy key',
      );
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  return fs.readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
}
