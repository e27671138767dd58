import { afterEach, describe, expect, it } from 'vitest';
import { createToken, revokeTokens } from '../../cloud-broker/auth/tokens.js';
import type { Db } from '../../cloud-broker/db/open.js';
import { BrokerLogins } from '../../cloud-broker/fleet/auth.js';
import { FleetStore } from '../../cloud-broker/fleet/store.js';
import { openTestDb } from '../helpers/test-db.js';

// The broker's device logins (cloud-broker/fleet/auth.ts): the CONNECTs of one event-loop turn
// are checked in one statement, a verified login is kept for the TTL, and a revoked device is
// refused as soon as the replica forgets it, or when the TTL ends if the word never came.
const SERVICE = { username: 'outpost-cloud', password: 'svc-secret' };
let db: Db | null = null;
afterEach(() => db?.close());

async function fleetOf(n: number): Promise<{ db: Db; tokens: string[] }> {
  db = await openTestDb();
  const store = new FleetStore(db);
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    store.upsertDevice(`dev-${i}`, []);
    tokens.push(createToken(db, 'device', `dev-${i}`));
  }
  return { db, tokens };
}

const login = (l: BrokerLogins, user: string, token: string) => l.authenticate(user, Buffer.from(token));

describe('broker device logins', () => {
  it('checks the CONNECTs of one turn in one statement and answers each on its own', async () => {
    const { db, tokens } = await fleetOf(5);
    const logins = new BrokerLogins(db, SERVICE, { ttlMs: 60_000, max: 100 });
    const before = db.stats().queries;
    const answers = await Promise.all([
      ...tokens.map((t, i) => login(logins, `dev-${i}`, t)),
      login(logins, 'dev-0', tokens[1]!), // another device's token
      login(logins, 'dev-3', 'op_not-a-token'),
      login(logins, 'no-such-device', tokens[2]!),
    ]);
    expect(db.stats().queries - before).toBe(1);
    expect(logins.counts.statements).toBe(1);
    expect(answers.slice(0, 5)).toEqual(tokens.map((_, i) => ({ kind: 'device', deviceId: `dev-${i}` })));
    expect(answers.slice(5)).toEqual([null, null, null]);
  });

  it('answers a verified login from memory, never for another username, and asks again after the TTL', async () => {
    const { db, tokens } = await fleetOf(2);
    let t = 1_000;
    const logins = new BrokerLogins(db, SERVICE, { ttlMs: 5_000, max: 100 }, () => t);
    expect(await login(logins, 'dev-0', tokens[0]!)).toEqual({ kind: 'device', deviceId: 'dev-0' });
    const before = db.stats().queries;
    expect(await login(logins, 'dev-0', tokens[0]!)).toEqual({ kind: 'device', deviceId: 'dev-0' });
    expect(await login(logins, 'dev-1', tokens[0]!)).toBeNull();
    expect(db.stats().queries - before).toBe(0);
    expect(logins.counts.cached).toBe(1);

    // Revoked in the database with no word to this replica: trusted until the TTL, not after.
    revokeTokens(db, 'device', 'dev-0');
    t += 4_999;
    expect(await login(logins, 'dev-0', tokens[0]!)).not.toBeNull();
    t += 1;
    expect(await login(logins, 'dev-0', tokens[0]!)).toBeNull();
  });

  it('refuses a forgotten (revoked) device at once, and a removed device even with a live token', async () => {
    const { db, tokens } = await fleetOf(2);
    const logins = new BrokerLogins(db, SERVICE, { ttlMs: 3_600_000, max: 100 });
    await login(logins, 'dev-0', tokens[0]!);
    await login(logins, 'dev-1', tokens[1]!);
    revokeTokens(db, 'device', 'dev-0');
    logins.forget('dev-0');
    expect(await login(logins, 'dev-0', tokens[0]!)).toBeNull();
    // Removed without its tokens revoked (the join with the device row refuses it).
    new FleetStore(db).markRemoved('dev-1');
    logins.forget('dev-1');
    expect(await login(logins, 'dev-1', tokens[1]!)).toBeNull();
    expect(logins.size).toBe(0);
  });

  it('holds at most `max` logins, dropping the oldest verification first', async () => {
    const { db, tokens } = await fleetOf(3);
    const logins = new BrokerLogins(db, SERVICE, { ttlMs: 60_000, max: 2 });
    for (const i of [0, 1, 2]) await login(logins, `dev-${i}`, tokens[i]!);
    expect(logins.size).toBe(2);
    const before = db.stats().queries;
    await login(logins, 'dev-2', tokens[2]!);
    await login(logins, 'dev-1', tokens[1]!);
    expect(db.stats().queries - before).toBe(0);
    await login(logins, 'dev-0', tokens[0]!);
    expect(db.stats().queries - before).toBe(1);
  });

  it('a TTL of 0 keeps nothing; the service login needs no statement', async () => {
    const { db, tokens } = await fleetOf(1);
    const logins = new BrokerLogins(db, SERVICE, { ttlMs: 0, max: 100 });
    await login(logins, 'dev-0', tokens[0]!);
    await login(logins, 'dev-0', tokens[0]!);
    expect(logins.counts.statements).toBe(2);
    const before = db.stats().queries;
    expect(await login(logins, SERVICE.username, SERVICE.password)).toEqual({
      kind: 'service',
      name: SERVICE.username,
    });
    expect(await login(logins, SERVICE.username, 'wrong')).toBeNull();
    expect(db.stats().queries - before).toBe(0);
  });
});
