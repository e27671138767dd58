import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { toOutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import {
  onlineKeysOf,
  parseRoot,
  serializeRoot,
  walkRootChain,
  type OnlineTrust,
  type RootMetadata,
} from '../../protocol/trust-root.js';
import { writeFileAtomicSync } from '../fs/atomic-file.js';

/**
 * The root this device trusts, and the walk that moves it forward (protocol/trust-root.ts has
 * the rules). It starts from the higher version of agent.json's root (or the implicit root built
 * from its legacy trustedKeys) and the one persisted in `<modelsDir>/.outpost/trust.json`; each
 * verified step of a walk is persisted at once, so a device cut off halfway keeps its progress and
 * a restart never goes back to an older root.
 *
 * Walks are single-flight and at most one per `minRefreshMs`: a flood of documents by unknown
 * keys (forged, or simply new) costs one walk per window, never one HTTP request per message. A
 * refresh asked for inside the window is deferred to its end, not dropped, so a document by a
 * new online key that arrives right after a forged one is still re-verified.
 */
export interface TrustStoreOptions {
  initial: RootMetadata;
  path: string;
  /** Root version v from the cloud (null on 404). */
  fetchRoot: (version: number) => Promise<Buffer | null>;
  log: Logger;
  now?: () => Date;
  minRefreshMs?: number;
  maxRotations?: number;
}

export class TrustStore {
  private root: RootMetadata;
  private inflight: Promise<boolean> | null = null;
  private lastWalk = 0;
  private readonly log: Logger;
  /** Why the last walk stopped before the end of the chain (a refused root), or null. */
  lastError: { code: string; message: string } | null = null;

  constructor(private readonly opts: TrustStoreOptions) {
    this.log = moduleLogger(opts.log, 'trust');
    this.root = opts.initial;
    try {
      const saved = parseRoot(readFileSync(opts.path));
      if (saved.signed.version >= this.root.signed.version) this.root = saved;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn({ err: toOutpostError(err).toJSON() }, 'persisted root unreadable; starting from agent.json');
    }
  }

  get version(): number {
    return this.root.signed.version;
  }

  current(): RootMetadata {
    return this.root;
  }

  /** The online keys and revocations of the trusted root; throws TRUST_ROOT_EXPIRED. */
  online(): OnlineTrust {
    return onlineKeysOf(this.root, this.opts.now?.() ?? new Date());
  }

  /** Walks the chain from the cloud; true when the trusted root moved forward. Never throws. */
  refresh(): Promise<boolean> {
    this.inflight ??= this.walk().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async walk(): Promise<boolean> {
    const wait = this.lastWalk + (this.opts.minRefreshMs ?? 30_000) - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait).unref());
    this.lastWalk = Date.now();
    const before = this.root.signed.version;
    this.lastError = null;
    try {
      await walkRootChain(this.root, {
        fetch: this.opts.fetchRoot,
        maxRotations: this.opts.maxRotations,
        onStep: (next) => {
          mkdirSync(dirname(this.opts.path), { recursive: true });
          writeFileAtomicSync(this.opts.path, serializeRoot(next), { mode: 0o600 });
          this.root = next;
          this.log.info({ version: next.signed.version, expires: next.signed.expires }, 'trusted a new root');
        },
      });
    } catch (err) {
      const e = toOutpostError(err);
      this.lastError = { code: e.code, message: e.message };
      this.log.warn({ code: e.code, version: this.root.signed.version }, `root chain walk stopped: ${e.message}`);
    }
    return this.root.signed.version > before;
  }
}
