import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NonceStore } from '../../agent/sync/nonce-store.js';
import { createSigner } from '../../cloud-broker/signing/sign.js';
import { buildCommand, verifyCommand, type CommandSigned } from '../../protocol/command.js';
import { codeOf } from '../helpers/error-code.js';

/** Signed commands (protocol/command.ts) and the nonce memory (agent/sync/nonce-store.ts), pure. */
const key = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return createSigner(privateKey, publicKey);
};
const cloud = key();
const NOW = new Date('2026-06-01T12:00:00Z');
const nonce = () => randomBytes(16).toString('hex');
const opts = { trustedKeys: [cloud.trustedKey()], deviceId: 'cam-1', topicCommand: 'rollback', now: NOW };
const cmd = (over: Partial<CommandSigned> = {}): CommandSigned => ({
  ...buildCommand('cam-1', 'rollback', { model: 'acme/colors' }, nonce(), NOW),
  ...over,
});
const wire = (doc: unknown) => Buffer.from(JSON.stringify(doc));

describe('verifyCommand', () => {
  it('accepts a command signed by the online key, for this device and topic, inside its lifetime', () => {
    const c = verifyCommand(wire(cloud.sign(cmd())), opts);
    expect(c).toMatchObject({ command: 'rollback', args: { model: 'acme/colors' }, keyid: cloud.keyid });
  });

  it('refuses unsigned, forged, foreign-key and revoked-key commands, each with its code', () => {
    expect(codeOf(() => verifyCommand(wire({ model: 'acme/colors' }), opts))).toBe('COMMAND_UNSIGNED');
    expect(codeOf(() => verifyCommand(wire({ signed: cmd(), signatures: [] }), opts))).toBe('COMMAND_UNSIGNED');
    const forged = cloud.sign(cmd()) as { signed: CommandSigned };
    forged.signed.args.model = 'acme/other';
    expect(codeOf(() => verifyCommand(wire(forged), opts))).toBe('COMMAND_BAD_SIGNATURE');
    expect(codeOf(() => verifyCommand(wire(key().sign(cmd())), opts))).toBe('COMMAND_UNTRUSTED_KEY');
    expect(codeOf(() => verifyCommand(wire(cloud.sign(cmd())), { ...opts, revoked: new Set([cloud.keyid]) }))).toBe(
      'COMMAND_KEY_REVOKED',
    );
  });

  it('refuses expired, future and over-long commands with COMMAND_EXPIRED', () => {
    const at = (issued: string, expires: string) => wire(cloud.sign(cmd({ issued, expires })));
    expect(codeOf(() => verifyCommand(at('2026-06-01T11:50:00Z', '2026-06-01T11:55:00Z'), opts))).toBe(
      'COMMAND_EXPIRED',
    );
    expect(codeOf(() => verifyCommand(at('2026-06-01T12:10:00Z', '2026-06-01T12:15:00Z'), opts))).toBe(
      'COMMAND_EXPIRED',
    );
    expect(codeOf(() => verifyCommand(at('2026-06-01T11:59:00Z', '2026-06-02T12:00:00Z'), opts))).toBe(
      'COMMAND_EXPIRED',
    );
  });

  it('refuses a command for another device or arriving on another command topic', () => {
    expect(codeOf(() => verifyCommand(wire(cloud.sign(cmd({ device: 'cam-2' }))), opts))).toBe('COMMAND_WRONG_DEVICE');
    expect(codeOf(() => verifyCommand(wire(cloud.sign(cmd())), { ...opts, topicCommand: 'sync' }))).toBe(
      'COMMAND_WRONG_DEVICE',
    );
  });

  it('refuses malformed signed parts and oversized payloads with COMMAND_MALFORMED', () => {
    expect(codeOf(() => verifyCommand(wire(cloud.sign({ ...cmd(), nonce: 'x' })), opts))).toBe('COMMAND_MALFORMED');
    expect(codeOf(() => verifyCommand(wire(cloud.sign({ ...cmd(), extra: 1 })), opts))).toBe('COMMAND_MALFORMED');
    expect(codeOf(() => verifyCommand(Buffer.alloc(20_000, 0x20), opts))).toBe('COMMAND_MALFORMED');
  });
});

describe('NonceStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-nonce-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a nonce seen before, also after a restart (a new store on the same file)', () => {
    const file = join(dir, 'a.json');
    const n = nonce();
    new NonceStore(file).claim(n, NOW.getTime() + 60_000, NOW.getTime());
    expect(codeOf(() => new NonceStore(file).claim(n, NOW.getTime() + 60_000, NOW.getTime() + 1000))).toBe(
      'COMMAND_REPLAYED',
    );
  });

  it('forgets nonces once their command expired, and is bounded', () => {
    const store = new NonceStore(join(dir, 'b.json'), 3);
    for (let i = 0; i < 3; i++) store.claim(nonce(), NOW.getTime() + 1000, NOW.getTime());
    expect(codeOf(() => store.claim(nonce(), NOW.getTime() + 1000, NOW.getTime()))).toBe('COMMAND_NONCE_STORE_FULL');
    store.claim(nonce(), NOW.getTime() + 5000, NOW.getTime() + 2000);
    expect(store.size).toBe(1);
  });
});
