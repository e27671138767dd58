/**
 * The code of the PostgreSQL bridge's worker thread (cloud-broker/db/postgres.ts). It is a string
 * run with `new Worker(code, {eval: true})` rather than a module file because the same code must
 * run from the TypeScript sources (tests, `npm run outpost`) and from the compiled dist/, and a
 * worker started from a .ts file would need a loader of its own. It is plain CommonJS with no
 * import but node-postgres, whose resolved path the main thread passes in.
 *
 * Protocol: the main thread posts {id, op, sql, params} on `port`; the worker answers
 * {id, ok, rows, changes} or {id, ok: false, error: {code, message, dead}} on the same port, then
 * bumps the shared counter and wakes the main thread waiting on it with Atomics.wait. One
 * connection serves every request in order, so BEGIN ... COMMIT are one session's.
 *
 * int8 (oid 20) and numeric (1700) arrive as text and become JS numbers here, refused when a
 * value would not survive the conversion: a count or a size must never be silently rounded.
 */
export const PG_WORKER_SOURCE = String.raw`
'use strict';
const { workerData } = require('node:worker_threads');
const pg = require(workerData.pgPath);
const { port, url, statementTimeoutMs, connectTimeoutMs } = workerData;
const wake = new Int32Array(workerData.wake);
const INT8 = 20;
const NUMERIC = 1700;
let dead = null;

function answer(msg) {
  port.postMessage(msg);
  Atomics.add(wake, 0, 1);
  Atomics.notify(wake, 0);
}

function toNumber(v, oid, column) {
  if (v === null) return null;
  const n = Number(v);
  const exact = oid === INT8 ? Number.isSafeInteger(n) : Number.isFinite(n) && (!/^-?\d+$/.test(v) || Number.isSafeInteger(n));
  if (!exact) {
    const e = new Error('column "' + column + '" holds ' + v + ', which a JavaScript number cannot represent exactly');
    e.code = 'OUTPOST_UNSAFE_NUMBER';
    throw e;
  }
  return n;
}

function convert(result) {
  const numeric = (result.fields || []).filter((f) => f.dataTypeID === INT8 || f.dataTypeID === NUMERIC);
  if (numeric.length > 0)
    for (const row of result.rows) for (const f of numeric) row[f.name] = toNumber(row[f.name], f.dataTypeID, f.name);
  return result.rows;
}

const client = new pg.Client({
  connectionString: url,
  connectionTimeoutMillis: connectTimeoutMs,
  statement_timeout: statementTimeoutMs,
  lock_timeout: statementTimeoutMs,
  application_name: 'outpost-cloud',
  types: { getTypeParser: (oid, format) => (oid === INT8 || oid === NUMERIC ? (v) => v : pg.types.getTypeParser(oid, format)) },
});
// A connection that breaks between requests (server restart, network) is reported on the next
// request, before anything is sent, so the main thread may reconnect and send it again safely.
client.on('error', (err) => { dead = err.message || String(err); });
client.on('end', () => { if (!dead) dead = 'the server closed the connection'; });

function fail(id, err, extra) {
  answer({ id, ok: false, error: Object.assign({ code: err.code, message: err.message || String(err) }, extra) });
}

let ready = client.connect().then(
  () => answer({ id: 0, ok: true }),
  (err) => { dead = err.message; fail(0, err, { dead: true }); },
);

port.on('message', (m) => {
  ready = ready.then(async () => {
    if (m.op === 'close') {
      await client.end().catch(() => undefined);
      answer({ id: m.id, ok: true });
      port.close();
      return;
    }
    if (dead) return fail(m.id, new Error(dead), { dead: true });
    try {
      const r = m.params ? await client.query(m.sql, m.params) : await client.query(m.sql);
      // A multi-statement exec answers an array of results; only its last one is wanted.
      const last = Array.isArray(r) ? r[r.length - 1] : r;
      answer({ id: m.id, ok: true, rows: m.op === 'rows' ? convert(last) : undefined, changes: last ? last.rowCount || 0 : 0 });
    } catch (err) {
      fail(m.id, err, dead ? { dead: true, sent: true } : undefined);
    }
  });
});
`;
