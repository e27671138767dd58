/**
 * Pure parsing of `Range` / `If-Range` for one blob (RFC 9110 section 14). One byte range is
 * served; several ranges get the whole blob (allowed by the RFC, and no client of ours asks).
 */
export type RangeDecision =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

const SPEC = /^(\d*)-(\d*)$/;

export function decideRange(
  range: string | undefined,
  ifRange: string | undefined,
  size: number,
  etag: string,
): RangeDecision {
  if (range === undefined) return { kind: 'full' };
  // If-Range with another validator (another ETag or any date: we send no Last-Modified) means
  // the client's partial copy is of other bytes: answer the whole blob so it restarts.
  if (ifRange !== undefined && ifRange.trim() !== etag) return { kind: 'full' };
  const trimmed = range.trim();
  if (!trimmed.toLowerCase().startsWith('bytes=')) return { kind: 'full' }; // unknown unit: ignore
  const spec = trimmed.slice(6).trim();
  if (spec.includes(',')) return { kind: 'full' };
  const m = SPEC.exec(spec);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'unsatisfiable' };
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || (m[2] !== '' && Number(m[2]) < start))
    return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}
