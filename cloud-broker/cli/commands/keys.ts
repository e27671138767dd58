import path from 'node:path';
import { printResult, type CliContext } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { parseRoot, tufKey, type RootMetadata } from '../../../protocol/trust-root.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import { generateRootKey, readRootKeys, signRoot, writeRootKeys, type RootKey } from '../../signing/root-keys.js';
import {
  DEFAULT_ROOT_DAYS,
  expiresIn,
  planInit,
  planRevokeRootKey,
  planRotateOnline,
  planRotateRoot,
} from '../../signing/root-plan.js';
import type { TrustStatus } from '../../signing/trust.js';
import { defineCommand, stringFlag, usageOnError, type FlagValues } from '../args.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';

/**
 * `outpost keys ...`: the root of trust (docs/security.md, "Keys"). Root private keys live in
 * folders on the operator's side (--out, --root-keys); the CLI signs each new root with them and
 * sends the cloud only the signed root, which the cloud checks by TUF's rules before serving it.
 */
const client = async (values: FlagValues, ctx: CliContext) => new FleetClient(await resolveCloud(values, ctx));

const ROOT_KEYS_FLAG = { 'root-keys': { type: 'string', multiple: true } } as const;
const EXPIRY_FLAG = { 'expires-days': { type: 'string' } } as const;
const EXPIRY_HELP = `  --expires-days D   the new root (and so its online key) expires in D days (default ${DEFAULT_ROOT_DAYS})`;
const ROOT_KEYS_HELP =
  '  --root-keys DIR    a folder with root key files (root-<keyid>.key); repeat to bring several together';

function intFlag(values: FlagValues, name: string, def: number, min: number, max: number): number {
  const v = stringFlag(values, name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new OutpostError('USAGE', `--${name} must be an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** The flags of the verbs that make new root keys (init, rotate-root). */
const NEW_KEYS_FLAGS = { out: { type: 'string' }, keys: { type: 'string' }, threshold: { type: 'string' } } as const;

function newKeysFlags(values: FlagValues, what: string): { out: string; n: number; k: number; days: number } {
  const out = stringFlag(values, 'out');
  if (out === undefined)
    throw new OutpostError('USAGE', `--out ${what} is required: the root key files are written there`);
  const n = usageOnError(() => intFlag(values, 'keys', 3, 1, 16));
  const k = usageOnError(() => intFlag(values, 'threshold', Math.min(2, n), 1, 16));
  const days = usageOnError(() => intFlag(values, 'expires-days', DEFAULT_ROOT_DAYS, 1, 3650));
  return { out, n, k, days };
}

function dirs(values: FlagValues, ctx: CliContext): string[] {
  const v = values['root-keys'] as unknown;
  const list = Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
  if (list.length === 0)
    throw new OutpostError('USAGE', '--root-keys DIR is required: the new root is signed with those keys');
  return list.map((d) => path.resolve(ctx.cwd, d));
}

async function currentRoot(c: FleetClient): Promise<{ status: TrustStatus; root: RootMetadata }> {
  const status = await c.trustStatus();
  if (!status.initialized || !status.root)
    throw new OutpostError(
      'TRUST_NOT_INITIALIZED',
      'this cloud has no root of trust yet; run `outpost keys init --out DIR` first',
    );
  return { status, root: parseRoot(status.root) };
}

/**
 * Signs `next` with every held key of the current root's and the next root's root role, after
 * checking that both thresholds can be met (the cloud checks again; this gives the clearer error).
 */
function signNext(
  current: RootMetadata,
  next: RootMetadata,
  held: ReadonlyMap<string, RootKey>,
  except?: string,
): void {
  const usable = [...held.values()].filter((k) => k.keyid !== except);
  for (const [root, what] of [
    [current, `root v${current.signed.version}`],
    [next, `the new root v${next.signed.version}`],
  ] as const) {
    const role = root.signed.roles.root;
    const have = usable.filter((k) => role.keyIDs.includes(k.keyid)).length;
    if (have < role.threshold)
      throw new OutpostError(
        'TRUST_KEYS_MISSING',
        `${what} needs ${role.threshold} of its ${role.keyIDs.length} root keys; the --root-keys folders hold ${have}`,
        { need: role.threshold, have },
      );
  }
  const wanted = new Set([...current.signed.roles.root.keyIDs, ...next.signed.roles.root.keyIDs]);
  for (const k of usable) if (wanted.has(k.keyid)) signRoot(next, k);
}

function summary(status: TrustStatus): string {
  if (!status.initialized)
    return `no root of trust yet: desired states are signed by the legacy key ${status.onlineKeys[0]?.keyid.slice(0, 16)}… (run \`outpost keys init\`)`;
  const days = Math.floor((Date.parse(status.expires ?? '') - Date.now()) / 86_400_000);
  // A root that expires freezes every device (TRUST_ROOT_EXPIRED): say so while there is time.
  const soon = days < 30 ? ` — renew it now: outpost keys rotate-online --root-keys DIR` : '';
  return [
    `root v${status.version}, expires ${status.expires} (in ${days} days)${soon}`,
    `  root keys (threshold ${status.threshold} of ${status.rootKeys.length}): ${status.rootKeys.map((k) => k.slice(0, 16)).join(', ')}`,
    `  online key: ${status.onlineKeys.map((k) => k.keyid.slice(0, 16)).join(', ')}`,
    `  revoked: ${status.revoked.length ? status.revoked.map((k) => k.slice(0, 16)).join(', ') : 'none'}`,
  ].join('\n');
}

export const keysShow = defineCommand({
  usage: `outpost keys show [--json]

Shows the root of trust: version, expiry, root keys and threshold, the online key that signs
desired states and commands, and the revoked keys.

${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS },
  async run({ values, json }, ctx) {
    const status = await (await client(values, ctx)).trustStatus();
    printResult(ctx, json, status, summary(status));
    return 0;
  },
});

export const keysInit = defineCommand({
  usage: `outpost keys init --out DIR [--keys N] [--threshold K] [--expires-days D] [--json]

Creates the root of trust: N root keys (default 3) written to DIR (mode 0600 files in a 0700
folder), any K of which (default 2) sign every later root, and root v2 over the legacy root v1,
so devices provisioned before (which trust only the cloud's single key) walk to it untouched.
The cloud's current signing key becomes the online key. Move DIR offline afterwards (split the
key files among their holders); the cloud never sees them. Then consider \`outpost keys
rotate-online\` to retire the key that devices trusted before.

  --out DIR          where the root key files are written (required)
  --keys N           number of root keys (1..16, default 3)
  --threshold K      signatures a new root needs (1..N, default 2, or 1 for a single key)
${EXPIRY_HELP}
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, ...EXPIRY_FLAG, ...NEW_KEYS_FLAGS },
  async run({ values, json }, ctx) {
    const { out, n, k, days } = newKeysFlags(values, 'DIR');
    const c = await client(values, ctx);
    const status = await c.trustStatus();
    if (status.initialized)
      throw new OutpostError(
        'TRUST_ALREADY_INITIALIZED',
        `this cloud already has root v${status.version}; see \`outpost keys show\``,
      );
    const keys = Array.from({ length: n }, generateRootKey);
    // Checked before any key is written, so a bad --threshold leaves nothing behind.
    const next = planInit({
      online: tufKey(status.onlineKeys[0].publicKey),
      rootKeys: keys.map((x) => tufKey(x.publicKey)),
      threshold: k,
      expires: expiresIn(days),
    });
    const dir = path.resolve(ctx.cwd, out);
    const files = await writeRootKeys(dir, keys);
    for (const key of keys) signRoot(next, key);
    const res = await c.installRoot(next.toJSON());
    printResult(
      ctx,
      json,
      { ...res, threshold: k, rootKeys: keys.map((x) => x.keyid), files },
      `root v${res.version} installed: ${k} of ${n} root keys sign later roots; key files in ${dir} — move them offline now`,
    );
    return 0;
  },
});

export const keysRotateOnline = defineCommand({
  usage: `outpost keys rotate-online --root-keys DIR [--root-keys DIR ...] [--expires-days D] [--json]

Replaces the online key: the cloud makes a new one, the root keys sign root N+1 naming it (and
listing the old one as revoked), the cloud re-signs every device's desired state with the new key,
and devices walk the root chain to trust it. Also the way to renew a root before it expires.

${ROOT_KEYS_HELP}
${EXPIRY_HELP}
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, ...ROOT_KEYS_FLAG, ...EXPIRY_FLAG },
  async run({ values, json }, ctx) {
    const days = usageOnError(() => intFlag(values, 'expires-days', DEFAULT_ROOT_DAYS, 1, 3650));
    const held = await readRootKeys(dirs(values, ctx));
    const c = await client(values, ctx);
    const { root } = await currentRoot(c);
    // Fail on missing keys before the cloud makes an online key nobody will use.
    signNext(root, root, held);
    const online = await c.createOnlineKey();
    const next = planRotateOnline(root, tufKey(online.publicKey), expiresIn(days));
    signNext(root, next, held);
    const res = await c.installRoot(next.toJSON());
    printResult(
      ctx,
      json,
      { ...res, onlineKey: online.keyid },
      `root v${res.version}: online key ${online.keyid.slice(0, 16)}…; ${res.resigned} device(s) re-signed`,
    );
    return 0;
  },
});

export const keysRotateRoot = defineCommand({
  usage: `outpost keys rotate-root --root-keys DIR [--root-keys DIR ...] --out NEWDIR [--keys N] [--threshold K] [--expires-days D] [--json]

Replaces the root keys: N new keys (default 3) are written to NEWDIR and root N+1 is signed by a
threshold of the current root keys (from --root-keys) AND by the new keys, version exactly N+1, so
every device can verify the hand-over. The online key stays.

${ROOT_KEYS_HELP}
  --out NEWDIR       where the new root key files are written (required)
  --keys N           number of new root keys (1..16, default 3)
  --threshold K      signatures a later root needs (1..N, default 2, or 1 for a single key)
${EXPIRY_HELP}
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, ...ROOT_KEYS_FLAG, ...EXPIRY_FLAG, ...NEW_KEYS_FLAGS },
  async run({ values, json }, ctx) {
    const { out, n, k, days } = newKeysFlags(values, 'NEWDIR');
    const held = await readRootKeys(dirs(values, ctx));
    const c = await client(values, ctx);
    const { root } = await currentRoot(c);
    signNext(root, root, held);
    const keys = Array.from({ length: n }, generateRootKey);
    const next = planRotateRoot(
      root,
      keys.map((x) => tufKey(x.publicKey)),
      k,
      expiresIn(days),
    );
    const dir = path.resolve(ctx.cwd, out);
    const files = await writeRootKeys(dir, keys);
    signNext(root, next, new Map([...held, ...keys.map((x) => [x.keyid, x] as const)]));
    const res = await c.installRoot(next.toJSON());
    printResult(
      ctx,
      json,
      { ...res, threshold: k, rootKeys: keys.map((x) => x.keyid), files },
      `root v${res.version}: ${k} of ${n} new root keys (in ${dir}; move them offline); the old root keys no longer sign`,
    );
    return 0;
  },
});

export const keysRevoke = defineCommand({
  usage: `outpost keys revoke <keyid> --root-keys DIR [--root-keys DIR ...] [--threshold K] [--expires-days D] [--json]

Revokes a key (a keyid or a unique prefix of one, see \`outpost keys show\`) in root N+1:
  - the online key: a new online key replaces it (as rotate-online), and devices refuse anything
    it signs with DESIRED_KEY_REVOKED / COMMAND_KEY_REVOKED;
  - a root key: it leaves the root role; the root is signed without it (--threshold lowers the
    threshold when fewer keys would remain than it needs).

${ROOT_KEYS_HELP}
  --threshold K      the new root's threshold (root keys only; default: unchanged)
${EXPIRY_HELP}
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, ...ROOT_KEYS_FLAG, ...EXPIRY_FLAG, threshold: { type: 'string' } },
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const prefix = usageOnError(() => {
      if (!/^[0-9a-f]{8,64}$/.test(positionals[0])) throw new Error('<keyid> must be 8..64 lowercase hex digits');
      return positionals[0];
    });
    const days = usageOnError(() => intFlag(values, 'expires-days', DEFAULT_ROOT_DAYS, 1, 3650));
    const held = await readRootKeys(dirs(values, ctx));
    const c = await client(values, ctx);
    const { root } = await currentRoot(c);
    const matches = Object.keys(root.signed.keys).filter((id) => id.startsWith(prefix));
    if (matches.length !== 1)
      throw new OutpostError(
        'TRUST_KEY_UNKNOWN',
        matches.length === 0
          ? `no key ${prefix} in root v${root.signed.version}`
          : `${prefix} matches ${matches.length} keys; give more digits`,
        { keyid: prefix },
      );
    const keyid = matches[0];
    let next: RootMetadata;
    if (root.signed.roles.targets.keyIDs.includes(keyid)) {
      signNext(root, root, held);
      const online = await c.createOnlineKey();
      next = planRotateOnline(root, tufKey(online.publicKey), expiresIn(days));
    } else {
      const threshold = usageOnError(() => intFlag(values, 'threshold', root.signed.roles.root.threshold, 1, 16));
      next = planRevokeRootKey(root, keyid, expiresIn(days), threshold);
    }
    signNext(root, next, held, keyid);
    const res = await c.installRoot(next.toJSON());
    printResult(ctx, json, { ...res, revoked: keyid }, `root v${res.version}: key ${keyid.slice(0, 16)}… revoked`);
    return 0;
  },
});
