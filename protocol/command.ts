import { OutpostError } from './errors/index.js';
import { parseEnvelope } from './desired-state.js';
import { loadTrustedKeys, verifyEnvelope, type SignedEnvelope, type TrustedKey } from './signing.js';
import { COMMANDS, isDeviceId, type CommandName } from './topics.js';

/**
 * A signed imperative command (outpost/v1/devices/{id}/commands/{cmd}). Like a desired state it is
 * signed by the root's online key, and it names its device; unlike one it has no revision, so
 * replay is stopped by a nonce the device remembers until the command's expiry (agent/sync/
 * nonce-store.ts), and by a short lifetime that bounds how long it must remember. Capturing a
 * command off the broker therefore buys nothing: it runs once, on the device it was made for,
 * within minutes of being signed.
 */
export interface CommandSigned {
  type: 'command';
  device: string;
  command: CommandName;
  /** String arguments only (rollback: {model: "owner/name"}). */
  args: Record<string, string>;
  /** 128 random bits, hex. */
  nonce: string;
  issued: string;
  expires: string;
}

export type CommandEnvelope = SignedEnvelope<CommandSigned>;
export type VerifiedCommand = Readonly<CommandSigned> & { readonly keyid: string };

/** The longest lifetime a device accepts; the cloud signs commands for 5 minutes. */
export const COMMAND_MAX_LIFETIME_S = 900;
export const COMMAND_DEFAULT_LIFETIME_S = 300;
/** How far in the future `issued` may be (clocks of devices drift). */
export const COMMAND_CLOCK_SKEW_S = 300;
export const COMMAND_MAX_BYTES = 16 * 1024;

const NONCE = /^[0-9a-f]{32}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

function malformed(key: string, what: string): OutpostError {
  return new OutpostError('COMMAND_MALFORMED', `command: ${key} ${what}`, { key });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseCommandSigned(v: unknown): CommandSigned {
  if (!isObject(v)) throw malformed('signed', 'must be an object');
  const known = new Set(['type', 'device', 'command', 'args', 'nonce', 'issued', 'expires']);
  const extra = Object.keys(v).filter((k) => !known.has(k));
  if (extra.length) throw malformed('signed', `has unknown keys ${extra.join(', ')}`);
  if (v.type !== 'command') throw malformed('signed.type', 'must be "command"');
  if (!isDeviceId(v.device)) throw malformed('signed.device', 'must be a device id');
  if (!COMMANDS.includes(v.command as CommandName))
    throw malformed('signed.command', `must be one of ${COMMANDS.join(', ')}`);
  if (!isObject(v.args) || Object.keys(v.args).length > 8)
    throw malformed('signed.args', 'must be an object of at most 8 strings');
  const args: Record<string, string> = {};
  for (const [k, a] of Object.entries(v.args)) {
    if (!/^[A-Za-z][A-Za-z0-9]{0,31}$/.test(k) || typeof a !== 'string' || a.length > 256)
      throw malformed(`signed.args.${k.slice(0, 32)}`, 'must be a string of at most 256 characters');
    args[k] = a;
  }
  if (typeof v.nonce !== 'string' || !NONCE.test(v.nonce))
    throw malformed('signed.nonce', 'must be 32 lowercase hex digits');
  for (const k of ['issued', 'expires'] as const) {
    const t = v[k];
    if (typeof t !== 'string' || !ISO.test(t) || Number.isNaN(Date.parse(t)))
      throw malformed(`signed.${k}`, 'must be an ISO 8601 UTC time');
  }
  return {
    type: 'command',
    device: v.device,
    command: v.command as CommandName,
    args,
    nonce: v.nonce,
    issued: v.issued as string,
    expires: v.expires as string,
  };
}

export interface CommandVerifyOptions {
  trustedKeys: readonly TrustedKey[];
  revoked?: ReadonlySet<string>;
  deviceId: string;
  /** The command name of the topic the message arrived on. */
  topicCommand: string;
  now: Date;
}

/**
 * Verifies a command payload in the order of verifyDesired: size, envelope (COMMAND_UNSIGNED when
 * there is none), signature, content, binding to this device and topic, time window. The nonce
 * check is the caller's, since it needs the device's memory.
 */
export function verifyCommand(payload: Buffer | string, opts: CommandVerifyOptions): VerifiedCommand {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > COMMAND_MAX_BYTES) throw malformed('document', `is ${size} bytes, more than ${COMMAND_MAX_BYTES}`);
  let doc: unknown;
  try {
    doc = size === 0 ? {} : JSON.parse(payload.toString());
  } catch (err) {
    throw malformed('document', `is not JSON (${(err as Error).message})`);
  }
  if (!isObject(doc) || !isObject(doc.signed) || !Array.isArray(doc.signatures) || doc.signatures.length === 0) {
    throw new OutpostError(
      'COMMAND_UNSIGNED',
      `command ${opts.topicCommand} is not signed; devices run only commands signed by the cloud's online key`,
      { command: opts.topicCommand },
    );
  }
  let envelope: SignedEnvelope<unknown>;
  try {
    envelope = parseEnvelope(doc);
  } catch (err) {
    throw malformed('envelope', (err as Error).message);
  }
  const keyid = verifyEnvelope(envelope, loadTrustedKeys(opts.trustedKeys), { revoked: opts.revoked, kind: 'command' });
  const signed = parseCommandSigned(envelope.signed);
  if (signed.device !== opts.deviceId || signed.command !== opts.topicCommand) {
    throw new OutpostError(
      'COMMAND_WRONG_DEVICE',
      `command signed as ${signed.command} for device "${signed.device}" arrived as ${opts.topicCommand} on "${opts.deviceId}"; ignored`,
      { device: signed.device, command: signed.command },
    );
  }
  const now = opts.now.getTime();
  const issued = Date.parse(signed.issued);
  const expires = Date.parse(signed.expires);
  if (
    expires <= now ||
    issued > now + COMMAND_CLOCK_SKEW_S * 1000 ||
    expires - issued > COMMAND_MAX_LIFETIME_S * 1000
  ) {
    throw new OutpostError(
      'COMMAND_EXPIRED',
      `command ${signed.command} is valid from ${signed.issued} to ${signed.expires}, outside now (${opts.now.toISOString()}) or longer than ${COMMAND_MAX_LIFETIME_S} s; ignored`,
      { issued: signed.issued, expires: signed.expires },
    );
  }
  return Object.freeze({ ...signed, keyid });
}

/** The signed part of a new command; the cloud signs it with its online key. */
export function buildCommand(
  device: string,
  command: CommandName,
  args: Record<string, string>,
  nonce: string,
  now: Date,
  lifetimeSeconds = COMMAND_DEFAULT_LIFETIME_S,
): CommandSigned {
  const issued = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const expires = new Date(issued.getTime() + lifetimeSeconds * 1000);
  const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z');
  return parseCommandSigned({
    type: 'command',
    device,
    command,
    args,
    nonce,
    issued: iso(issued),
    expires: iso(expires),
  });
}
