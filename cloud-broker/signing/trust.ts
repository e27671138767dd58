import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
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
import {
  importDataDir,
  LEGACY_KEY,
  ONLINE_RE,
  onlineKeyName,
  parseEd25519Pem,
  ROOT_RE,
  rootName,
} from '../secrets/import.js';
import type { ClusterSecrets } from '../secrets/store.js';
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
 * All of it is in the database's cluster_secrets (cloud-broker/secrets/store.ts), shared by the
 * replicas, under the names the data-dir files had:
 *   signing/desired.key          the first online key (also the legacy key of old devices)
 *   signing/online/<keyid>.key   online keys made by rotate-online
 *   signing/roots/<N>.root.json  the root chain, served at /v1/trust/root/<N>.json
 *
 * `signer` always signs with the online key of the newest root (the legacy key before `keys init`).
 *
 * Replicas follow each other's rotations by reading the table's head version before they sign
 * (`sync`), at most once per turn of the event loop: a root installed by another replica is
 * committed before its POST /v1/trust/root answers, so any signature started after that answer
 * reads the new head first and signs with the new online key. A new root from the database is
 * checked by the same TUF rules (updateRoot) as one posted here before it is used.
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
  private v1: RootMetadata | null = null;
  private current: Signer;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;
  /** The cluster_secrets version this replica has applied, and whether it was read this turn. */
  private seen = 0;
  private fresh = false;
  /** Delegates to the current online key, so holders of it (the fleet) follow rotations. */
  readonly signer: Signer;

  private constructor(
    private readonly secrets: ClusterSecrets,
    private readonly legacy: Signer,
    log: Logger,
  ) {
    this.log = moduleLogger(log, 'trust');
    this.current = legacy;
    const self = this;
    this.signer = {
      get keyid() {
        self.sync();
        return self.current.keyid;
      },
      get publicKeyPem() {
        self.sync();
        return self.current.publicKeyPem;
      },
      sign: (signed) => {
        self.sync();
        return self.current.sign(signed);
      },
      trustedKey: () => {
        self.sync();
        return self.current.trustedKey();
      },
    };
  }

  /** `dataDir`: a data dir from before the database held the keys is imported from, once. */
  static async open(secrets: ClusterSecrets, dataDir: string, log: Logger): Promise<TrustService> {
    await importDataDir(secrets, dataDir, log);
    const legacy = loadOrCreateSigner(secrets, log);
    const svc = new TrustService(secrets, legacy, log);
    svc.sync(true);
    svc.warnIfExpiring();
    return svc;
  }

  /**
   * Applies what other replicas (or an import) added to cluster_secrets since `seen`: online keys
   * first, then new roots in version order, each verified against the one before. `force` skips
   * the once-per-turn shortcut (installRoot and open must see the newest state).
   */
  sync(force = false): void {
    if (this.fresh && !force) return;
    this.fresh = true;
    queueMicrotask(() => {
      this.fresh = false;
    });
    if (this.secrets.head() === this.seen) return;
    const rows = this.secrets.since(this.seen);
    const roots: { version: number; json: string }[] = [];
    for (const r of rows) {
      const root = ROOT_RE.exec(r.name);
      if (r.name === LEGACY_KEY || ONLINE_RE.test(r.name)) this.hold(r.value, r.name);
      else if (root) roots.push({ version: Number(root[1]), json: r.value });
    }
    roots.sort((a, b) => a.version - b.version);
    for (const { version, json } of roots) {
      if (version <= ((this.latest ?? this.v1)?.signed.version ?? 0)) continue;
      try {
        this.applyRoot(version, json);
      } catch (err) {
        // A root this replica cannot verify is never served nor followed; the next sync retries.
        this.log.error({ err, version }, 'a root in the database does not verify; keeping the previous one');
        return;
      }
    }
    this.seen = rows.length ? rows[rows.length - 1]!.version : this.seen;
  }

  /** The signer of a held online key: in-process only (tests use it as a stolen key). */
  heldSigner(keyid: string): Signer | null {
    this.sync();
    return this.held.get(keyid)?.signer ?? null;
  }

  /** The newest root's version, or 1 (the implicit legacy root) before `keys init`. */
  get version(): number {
    this.sync();
    return this.latest?.signed.version ?? 1;
  }

  rootJson(version: number): string | null {
    this.sync();
    return this.chain.get(version) ?? null;
  }

  /** What `device provision` writes as trustedRoot: the newest root, or nothing before `keys init`. */
  provisionRoot(): Record<string, unknown> | undefined {
    this.sync();
    return this.latest ? (JSON.parse(serializeRoot(this.latest)) as Record<string, unknown>) : undefined;
  }

  status(): TrustStatus {
    this.sync();
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

  /**
   * A new online key, stored in the database (so the replica that installs the root naming it
   * may be another one); it signs once a root that names it is installed.
   */
  async createOnlineKey(): Promise<TrustedKey> {
    const { privateKey } = generateKeyPairSync('ed25519');
    const keyid = keyIdOf(createPublicKey(privateKey));
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.secrets.insert(onlineKeyName(keyid), pem);
    const held = this.hold(pem, onlineKeyName(keyid));
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
    // Another replica may have created the online key or installed a root since this one looked.
    this.sync(true);
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
    this.store(first ? [trusted, verified] : [verified]);
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

  /**
   * Stores the roots together or not at all; when another replica stored one of these versions
   * first, nothing is stored and the caller is told to start again from the newest root.
   */
  private store(roots: RootMetadata[]): void {
    const jsons = roots.map((r) => ({ version: r.signed.version, json: serializeRoot(r) }));
    this.secrets.atomically((add) => {
      for (const { version, json } of jsons)
        if (!add(rootName(version), json))
          throw new OutpostError(
            'TRUST_ROOT_RACE',
            `another replica installed root v${version} meanwhile; run the command again (it starts from the newest root)`,
            { version },
          );
    });
    for (const { version, json } of jsons) this.chain.set(version, json);
  }

  private hold(pem: string, name: string): Held {
    const privateKey = parseEd25519Pem(pem, `${name} (database)`);
    const signer = createSigner(privateKey, createPublicKey(privateKey));
    const held = { privateKey, signer };
    this.held.set(signer.keyid, held);
    return held;
  }

  /**
   * One root from the database, verified by the rules a device applies: v1 as it is (its
   * signature is checked when v2 is verified against it), every later one against the one before.
   */
  private applyRoot(version: number, json: string): void {
    const prev = this.latest ?? this.v1;
    if (version !== (prev?.signed.version ?? 0) + 1)
      throw new Error(`root v${version} follows v${prev?.signed.version ?? 0}: the chain has a gap`);
    const root = prev ? updateRoot(prev, json) : parseRoot(json);
    this.chain.set(version, serializeRoot(root));
    // v1 is the implied legacy root, stored together with v2: the chain is in use from v2 on.
    if (version === 1) {
      this.v1 = root;
      return;
    }
    this.latest = root;
    const online = root.signed.roles[ONLINE_ROLE].keyIDs.find((id) => this.held.has(id));
    if (online) this.current = this.held.get(online)!.signer;
    else
      this.log.error(
        { version: root.signed.version },
        'no online key of the newest root is held; signing with the previous key',
      );
  }

  private warnIfExpiring(): void {
    if (!this.latest) return;
    const days = (Date.parse(this.latest.signed.expires) - Date.now()) / 86_400_000;
    if (days < 30)
      this.log.warn(
        { version: this.latest.signed.version, expires: this.latest.signed.expires },
        'the root of trust expires within 30 days: devices then refuse new desired states; renew it with `outpost keys rotate-online`',
      );
  }
}
