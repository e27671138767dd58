import { describe, expect, it } from 'vitest';
import { isNotFound, s3Failure } from '../../cloud-broker/artifacts/s3-errors.js';

// The line between "wait and retry" and "the operator must fix it", on errors shaped as the
// AWS SDK throws them (name, $metadata.httpStatusCode, a Node network error's code).
const sdk = (name: string, status?: number) =>
  Object.assign(new Error(name), { name, ...(status ? { $metadata: { httpStatusCode: status } } : {}) });

describe('s3Failure', () => {
  it.each([
    [sdk('InternalError', 500)],
    [sdk('ServiceUnavailable', 503)],
    [sdk('SlowDown', 503)],
    [sdk('RequestTimeout', 400)],
    [sdk('TooManyRequests', 429)],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })],
    [Object.assign(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), {})],
    [sdk('TimeoutError')],
  ])('%s is BLOB_STORE_UNAVAILABLE', (err) => {
    expect(s3Failure(err, 'GetObject k', 's3://b/').code).toBe('BLOB_STORE_UNAVAILABLE');
  });

  it.each([
    [sdk('AccessDenied', 403)],
    [sdk('InvalidAccessKeyId', 403)],
    [sdk('SignatureDoesNotMatch', 403)],
    [sdk('NoSuchBucket', 404)],
    [sdk('PermanentRedirect', 301)],
    [sdk('CredentialsProviderError')],
    [new Error('Region is missing')],
  ])('%s is BLOB_STORE_REFUSED', (err) => {
    const e = s3Failure(err, 'HeadObject k', 's3://b/');
    expect(e.code).toBe('BLOB_STORE_REFUSED');
    expect(e.message).toContain('AWS_ACCESS_KEY_ID');
  });

  it('a missing key is not-found, a missing bucket is not', () => {
    expect(isNotFound(sdk('NoSuchKey', 404))).toBe(true);
    expect(isNotFound(sdk('NotFound', 404))).toBe(true);
    expect(isNotFound(sdk('NoSuchBucket', 404))).toBe(false);
    expect(isNotFound(sdk('AccessDenied', 403))).toBe(false);
  });
});
