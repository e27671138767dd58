import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { TOPIC_ROOT, topics } from '../../protocol/topics.js';
import type { DynsecAdmin } from './dynsec.js';

/**
 * Outpost's devices and service account in Mosquitto's dynamic-security plugin: what exists there
 * and the commands that make it so. The policy is cloud-broker/broker/acl.ts's, in dynsec terms.
 *
 * - One role per device, `outpost-device-<id>`. Mosquitto 2.0's dynsec (Debian 12 ships 2.0.11)
 *   has no %u/%c substitution in ACL topics (the pattern ACL file has it, the plugin does not; the
 *   2.1 development branch adds it to the plugin), so each device's topics are written out. Per-
 *   device roles work on every version; one shared %u role would be the 2.1-only shortcut. The device may subscribe to its own desired state (literal) and commands/#
 *   (pattern: also covers commands/+ and one command), and publish its own reported, status,
 *   telemetry and responses/#. Everything else falls to the plugin's defaults, which deny
 *   publishing and subscribing (setDefaultACLAccess is asserted at startup).
 * - The client is pinned to client id = device id, so a device cannot take over another's
 *   session [MQTT-3.1.4-2]; a wrong client id is refused at CONNECT like a wrong password.
 * - Clients Outpost manages carry textname MARKER; reconciliation touches no other client, so an
 *   operator's own users on the same broker are left alone. textdescription holds a fingerprint of
 *   the current token (16 hex of its sha256, which the database stores whole anyway), so a broker
 *   restored from an old backup is found to hold a stale password.
 * - The service account is whoever the cloud logs in as (the --broker user, which must be a
 *   dynsec admin); role `outpost-cloud` adds the fleet's topics to it.
 */
export const DEVICE_MARKER = 'outpost device';
export const SERVICE_ROLE = 'outpost-cloud';
export const deviceRoleName = (id: string): string => `outpost-device-${id}`;

export interface DynsecAcl {
  acltype:
    | 'publishClientSend'
    | 'publishClientReceive'
    | 'subscribeLiteral'
    | 'subscribePattern'
    | 'unsubscribeLiteral'
    | 'unsubscribePattern';
  topic: string;
  allow: boolean;
  priority?: number;
}

const allow = (acltype: DynsecAcl['acltype'], topic: string): DynsecAcl => ({ acltype, topic, allow: true });

export function deviceAcls(id: string): DynsecAcl[] {
  return [
    allow('subscribeLiteral', topics.desired(id)),
    allow('subscribePattern', topics.commands(id)),
    allow('publishClientSend', topics.reported(id)),
    allow('publishClientSend', topics.status(id)),
    allow('publishClientSend', topics.telemetry(id)),
    allow('publishClientSend', `${topics.device(id)}/responses/#`),
  ];
}

export function serviceAcls(): DynsecAcl[] {
  return [
    allow('publishClientSend', `${TOPIC_ROOT}/#`),
    allow('publishClientReceive', `${TOPIC_ROOT}/#`),
    allow('subscribePattern', `${TOPIC_ROOT}/#`),
    allow('unsubscribePattern', `${TOPIC_ROOT}/#`),
  ];
}

/** A client as listed by the plugin (only what reconciliation reads). */
export interface DynsecClientInfo {
  username: string;
  fingerprint: string | null;
  disabled: boolean;
}

/** listClients pages: small enough that one answer stays far below MAX_RESPONSE_BYTES. */
const PAGE = 200;

export class DynsecDirectory {
  private readonly log: Logger;

  constructor(
    private readonly admin: DynsecAdmin,
    log: Logger,
  ) {
    this.log = moduleLogger(log, 'dynsec-directory');
  }

  /**
   * Deny-by-default for what a client sends and subscribes to; these are the plugin's own
   * defaults, asserted so that a broker configured otherwise by hand cannot open the tree.
   */
  async assertDefaults(): Promise<void> {
    await this.admin.run({
      command: 'setDefaultACLAccess',
      acls: [
        { acltype: 'publishClientSend', allow: false },
        { acltype: 'subscribe', allow: false },
      ],
    });
  }

  /**
   * Gives `username` (the connection's own user) the fleet's topics. Returns true when the role
   * had to be added: Mosquitto then drops that user's connections to apply it (addClientRole
   * kicks), so the caller's connection goes away once and reconnects with the new rights.
   */
  async ensureServiceAccess(username: string): Promise<boolean> {
    await this.ensureRole(SERVICE_ROLE, serviceAcls());
    const r = await this.admin.run({ command: 'getClient', username });
    const roles = ((r.data?.client as { roles?: { rolename?: unknown }[] } | undefined)?.roles ?? []).map(
      (x) => x.rolename,
    );
    if (roles.includes(SERVICE_ROLE)) return false;
    this.log.info({ username, role: SERVICE_ROLE }, 'granting the fleet topics to the service account');
    // The answer may be lost with the kicked connection; the next connect checks again.
    await this.admin.run({ command: 'addClientRole', username, rolename: SERVICE_ROLE }).catch((err: unknown) => {
      if (!(err instanceof OutpostError && err.code === 'DYNSEC_DISCONNECTED')) throw err;
    });
    return true;
  }

  /**
   * Creates the device's role and client, or brings an existing one to this password and policy
   * (idempotent: "already exists" is success). Existing clients are kicked by modifyClient, which
   * is right: a re-issued credential must end the old sessions.
   */
  async ensureDevice(id: string, token: string, fingerprint: string): Promise<'created' | 'updated'> {
    const role = deviceRoleName(id);
    await this.ensureRole(role, deviceAcls(id));
    const client = {
      username: id,
      password: token,
      clientid: id,
      textname: DEVICE_MARKER,
      textdescription: fingerprint,
      roles: [{ rolename: role }],
    };
    const r = await this.admin.run({ command: 'createClient', ...client }, ['Client already exists']);
    if (r.error === undefined) {
      this.log.info({ device: id }, 'device client created in the broker');
      return 'created';
    }
    await this.admin.run({ command: 'modifyClient', ...client });
    await this.admin.run({ command: 'enableClient', username: id });
    this.log.info({ device: id }, 'device client updated in the broker');
    return 'updated';
  }

  /** Deletes the device's client (Mosquitto disconnects its sessions at once) and its role. */
  async removeDevice(id: string): Promise<void> {
    await this.admin.run({ command: 'deleteClient', username: id }, ['Client not found']);
    await this.admin.run({ command: 'deleteRole', rolename: deviceRoleName(id) }, ['Role not found']);
    this.log.info({ device: id }, 'device client deleted from the broker');
  }

  /** Every client Outpost manages (textname MARKER), read page by page. */
  async listDevices(): Promise<Map<string, DynsecClientInfo>> {
    const out = new Map<string, DynsecClientInfo>();
    for (let offset = 0; ; offset += PAGE) {
      const r = await this.admin.run({ command: 'listClients', verbose: true, count: PAGE, offset });
      const clients = Array.isArray(r.data?.clients) ? (r.data.clients as unknown[]) : [];
      for (const c of clients) {
        if (typeof c !== 'object' || c === null) continue;
        const { username, textname, textdescription, disabled } = c as Record<string, unknown>;
        if (typeof username !== 'string' || textname !== DEVICE_MARKER) continue;
        out.set(username, {
          username,
          fingerprint: typeof textdescription === 'string' ? textdescription : null,
          disabled: disabled === true,
        });
      }
      const total = typeof r.data?.totalCount === 'number' ? r.data.totalCount : 0;
      if (clients.length < PAGE || offset + PAGE >= total) return out;
    }
  }

  /**
   * Creates a role with these ACLs, or rewrites an existing role's ACLs when they differ.
   * Rewriting kicks the role's clients, so an unchanged role is left alone (a cloud restart must
   * not disconnect the fleet).
   */
  private async ensureRole(rolename: string, acls: DynsecAcl[]): Promise<void> {
    const created = await this.admin.run({ command: 'createRole', rolename, acls }, ['Role already exists']);
    if (created.error === undefined) return;
    const r = await this.admin.run({ command: 'getRole', rolename });
    const have = (r.data?.role as { acls?: unknown } | undefined)?.acls;
    if (sameAcls(have, acls)) return;
    this.log.info({ role: rolename }, 'role ACLs differ from the policy; rewriting them');
    await this.admin.run({ command: 'modifyRole', rolename, acls });
  }
}

function aclKey(a: { acltype?: unknown; topic?: unknown; allow?: unknown }): string {
  return `${String(a.acltype)}\0${String(a.topic)}\0${a.allow === true}`;
}

function sameAcls(have: unknown, want: DynsecAcl[]): boolean {
  if (!Array.isArray(have)) return false;
  const a = new Set(have.map((x) => aclKey((x ?? {}) as Record<string, unknown>)));
  const b = new Set(want.map(aclKey));
  return a.size === b.size && [...b].every((k) => a.has(k));
}
