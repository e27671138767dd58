import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { DYNSEC_RESPONSE_TOPIC, DynsecAdmin } from '../broker/dynsec.js';
import { DynsecDirectory } from '../broker/dynsec-directory.js';
import { type DeviceCredentials, tokenFingerprint } from './device-credentials.js';
import type { FleetOptions } from './fleet.js';
import type { PublisherOptions } from './publisher.js';
import type { FleetStore } from './store.js';

/**
 * The fleet's devices kept in step with Mosquitto's dynamic-security plugin
 * (`--broker-admin dynsec`, docs/scale.md): no password file, no ACL file, no SIGHUP.
 *
 * - provision: the device's role and client are created through $CONTROL before the agent.json
 *   is handed out, so the credentials work the moment the operator has them;
 * - remove: the client is deleted, which makes Mosquitto disconnect the device at once;
 * - every connect of the cloud to the broker (start, broker restart, broker restored from a
 *   backup): devices live in the database but missing (or stale) in the broker are created with
 *   their recomputed token (device-credentials.ts), and Outpost clients of removed devices are
 *   deleted. Clients that Outpost did not create are never touched.
 */
export interface DynsecReconcileResult {
  created: string[];
  updated: string[];
  removed: string[];
  /** Live devices whose token cannot be recomputed (DYNSEC_CREDENTIAL_UNRECOVERABLE). */
  unrecoverable: string[];
}

/** How many devices are reconciled at once; below DynsecAdmin's in-flight bound. */
const CONCURRENCY = 8;

export class DynsecLink {
  readonly admin: DynsecAdmin;
  readonly directory: DynsecDirectory;
  private readonly log: Logger;
  private send: ((topic: string, payload: string) => Promise<void>) | null = null;
  private running: Promise<DynsecReconcileResult> | null = null;
  private markReady: () => void = () => undefined;
  /** Resolves once a connection holds the service's rights (after the one kick of a first grant). */
  private readonly readyPromise = new Promise<void>((resolve) => {
    this.markReady = resolve;
  });

  constructor(
    private readonly o: {
      store: () => FleetStore;
      credentials: DeviceCredentials;
      /** The user the cloud logs in as: a dynsec admin, and the fleet's service account. */
      username: string;
      log: Logger;
      timeoutMs?: number;
    },
  ) {
    this.log = moduleLogger(o.log, 'dynsec-link');
    this.admin = new DynsecAdmin({
      channel: {
        publish: (topic, payload) =>
          this.send ? this.send(topic, payload) : Promise.reject(new Error('no broker connection yet')),
      },
      log: o.log,
      username: o.username,
      timeoutMs: o.timeoutMs,
    });
    this.directory = new DynsecDirectory(this.admin, o.log);
  }

  /** The publisher's control channel (PublisherOptions.control). */
  control(): NonNullable<PublisherOptions['control']> {
    return {
      topic: DYNSEC_RESPONSE_TOPIC,
      bind: (publish) => {
        this.send = publish;
      },
      onMessage: (payload) => this.admin.handleResponse(payload),
      onClose: () => this.admin.connectionLost(),
      prepare: async () => {
        await this.directory.assertDefaults();
        // When the role is new, Mosquitto drops this connection to apply it (addClientRole kicks);
        // the publisher reconnects and everything after runs again with the new rights.
        if (!(await this.directory.ensureServiceAccess(this.o.username))) this.markReady();
      },
    };
  }

  /**
   * Waits until the service account has its rights on a live connection, so that the first
   * provision after startup does not meet the reconnect that the first grant causes.
   */
  async ready(timeoutMs = 20_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new OutpostError(
              'DYNSEC_TIMEOUT',
              `the broker did not let ${this.o.username} administer dynamic security within ${timeoutMs / 1000} s: check that mosquitto loads mosquitto_dynamic_security.so and that ${this.o.username} has its admin role`,
              { username: this.o.username, timeoutMs },
            ),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.readyPromise, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The Fleet's hooks: tokens it can recompute, the broker login at provision, deletion at remove. */
  fleetHooks(): Pick<FleetOptions, 'issueDeviceToken' | 'onProvisioned' | 'onRevoke'> {
    return {
      issueDeviceToken: (id) => this.o.credentials.issue(id),
      onProvisioned: async (id, token) => {
        await this.directory.ensureDevice(id, token, tokenFingerprint(token));
      },
      onRevoke: (id) => this.directory.removeDevice(id),
    };
  }

  /** One reconciliation at a time; a call while one runs gets that one's result. */
  reconcile(): Promise<DynsecReconcileResult> {
    this.running ??= this.reconcileOnce().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async reconcileOnce(): Promise<DynsecReconcileResult> {
    // The broker first, the database second: a device removed in between is then seen as
    // removed (and deleted again, harmlessly), never re-created from a stale read.
    const inBroker = await this.directory.listDevices();
    const devices = this.o.store().listDevices();
    const live = new Set(devices.filter((d) => d.removedAt === null).map((d) => d.id));
    const result: DynsecReconcileResult = { created: [], updated: [], removed: [], unrecoverable: [] };
    const work: (() => Promise<void>)[] = [];
    for (const id of live) {
      const token = this.o.credentials.recover(id);
      const have = inBroker.get(id);
      if (token === null) {
        if (!have) {
          result.unrecoverable.push(id);
          const err = new OutpostError(
            'DYNSEC_CREDENTIAL_UNRECOVERABLE',
            `device ${id} is missing from the broker and its token cannot be recomputed; run \`outpost device remove ${id}\` and provision it again`,
            { device: id },
          );
          this.log.warn({ err, device: id }, err.message);
        }
        continue;
      }
      if (have && have.fingerprint === tokenFingerprint(token) && !have.disabled) continue;
      work.push(async () => {
        // Re-read just before writing: a remove since the listing must win.
        if (this.o.store().getDevice(id)?.removedAt !== null) return;
        const how = await this.directory.ensureDevice(id, token, tokenFingerprint(token));
        result[how].push(id);
      });
    }
    for (const id of inBroker.keys()) {
      if (live.has(id)) continue;
      work.push(async () => {
        await this.directory.removeDevice(id);
        result.removed.push(id);
      });
    }
    const failures = await runPool(work, CONCURRENCY);
    for (const err of failures) this.log.error({ err }, 'dynsec reconciliation step failed');
    if (result.created.length + result.updated.length + result.removed.length + result.unrecoverable.length > 0)
      this.log.info(
        {
          created: result.created.length,
          updated: result.updated.length,
          removed: result.removed.length,
          unrecoverable: result.unrecoverable.length,
        },
        'broker reconciled with the fleet',
      );
    return result;
  }
}

/** Runs `jobs` with at most `n` at once; returns the errors (every job runs). */
async function runPool(jobs: (() => Promise<void>)[], n: number): Promise<unknown[]> {
  const errors: unknown[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      await job().catch((err: unknown) => errors.push(err));
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, worker));
  return errors;
}
