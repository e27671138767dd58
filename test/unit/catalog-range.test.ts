import { describe, expect, it } from 'vitest';
import { decideRange } from '../../cloud-broker/artifacts/range.js';

const ETAG = '"abc"';

describe('decideRange', () => {
  it.each([
    ['bytes=0-9', 100, { kind: 'partial', start: 0, end: 9 }],
    ['bytes=10-', 100, { kind: 'partial', start: 10, end: 99 }],
    ['bytes=-10', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-500', 100, { kind: 'partial', start: 0, end: 99 }],
    ['bytes=90-500', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=99-99', 100, { kind: 'partial', start: 99, end: 99 }],
    ['bytes=100-', 100, { kind: 'unsatisfiable' }],
    ['bytes=100-200', 100, { kind: 'unsatisfiable' }],
    ['bytes=-0', 100, { kind: 'unsatisfiable' }],
    ['bytes=9-3', 100, { kind: 'unsatisfiable' }],
    ['bytes=x-y', 100, { kind: 'unsatisfiable' }],
    ['bytes=-', 100, { kind: 'unsatisfiable' }],
    ['bytes=0-', 0, { kind: 'unsatisfiable' }],
    ['bytes=0-1,5-6', 100, { kind: 'full' }],
    ['items=0-1', 100, { kind: 'full' }],
  ])('%s of %i bytes', (range, size, want) => {
    expect(decideRange(range, undefined, size, ETAG)).toEqual(want);
  });

  it('serves the whole blob without a Range header', () => {
    expect(decideRange(undefined, ETAG, 100, ETAG)).toEqual({ kind: 'full' });
  });

  it('honours If-Range only when it names this ETag', () => {
    expect(decideRange('bytes=5-', ETAG, 100, ETAG)).toEqual({ kind: 'partial', start: 5, end: 99 });
    expect(decideRange('bytes=5-', '"other"', 100, ETAG)).toEqual({ kind: 'full' });
    expect(decideRange('bytes=5-', 'Wed, 21 Oct 2015 07:28:00 GMT', 100, ETAG)).toEqual({ kind: 'full' });
  });
});
