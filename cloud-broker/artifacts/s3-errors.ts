import { OutpostError } from '../../protocol/errors/index.js';

/**
 * What the AWS SDK throws, turned into the catalog's two blob-store codes. The line between them
 * is whether waiting can help: a network failure, a timeout, throttling or a 5xx is
 * BLOB_STORE_UNAVAILABLE (retryable: devices and uploaders try again), while a refusal
 * (credentials, permissions, a wrong bucket or region) is BLOB_STORE_REFUSED and needs the
 * operator. A missing object is never either: callers turn 404 into BLOB_NOT_FOUND first.
 *
 * Only names and statuses from the error are copied into the message and details; the SDK's
 * errors carry no secrets, and the request (which holds the signature) is never logged.
 */
interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  errors?: { code?: string }[];
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

/** Refusals S3 and S3-compatible servers name in their error bodies. */
const REFUSALS = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidBucketName',
  'NoSuchBucket',
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
  'InvalidRequest',
  'NotImplemented',
]);

/**
 * Answers that come with a 4xx but are transient: S3 answers a client that sent nothing for its
 * idle timeout (about 20 s, e.g. an uploader that stalled) with 400 RequestTimeout.
 */
const TRANSIENT = new Set(['RequestTimeout', 'SlowDown', 'ServiceUnavailable', 'InternalError', 'TimeoutError']);

export function httpStatusOf(err: unknown): number | undefined {
  return (err as SdkError)?.$metadata?.httpStatusCode;
}

/** True for "no such object" answers (GetObject's NoSuchKey, HeadObject's bare 404). */
export function isNotFound(err: unknown): boolean {
  const e = err as SdkError;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || (httpStatusOf(err) === 404 && e?.name !== 'NoSuchBucket');
}

function networkCode(e: SdkError): string | undefined {
  return e.code ?? e.errors?.find((x) => x.code)?.code;
}

export function s3Failure(err: unknown, op: string, where: string): OutpostError {
  if (err instanceof OutpostError) return err;
  const e = (err ?? {}) as SdkError;
  const status = httpStatusOf(err);
  const name = e.name ?? 'Error';
  const net = networkCode(e);
  const refused =
    !TRANSIENT.has(name) &&
    (REFUSALS.has(name) ||
      /region is missing/i.test(e.message ?? '') ||
      (status !== undefined && status >= 300 && status < 500 && status !== 408 && status !== 429));
  const details = {
    store: where,
    op,
    s3Error: name,
    ...(status ? { httpStatus: status } : {}),
    ...(net ? { cause: net } : {}),
  };
  if (refused) {
    return new OutpostError(
      'BLOB_STORE_REFUSED',
      `the S3 blob store ${where} refused ${op} (${name}${status ? ` ${status}` : ''}); check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), the bucket name, --s3-region, and that the policy allows s3:GetObject, s3:PutObject, s3:ListBucket and s3:AbortMultipartUpload`,
      details,
      { cause: err },
    );
  }
  const why = net ?? (status ? `HTTP ${status} ${name}` : name === 'Error' ? (e.message ?? 'error') : name);
  return new OutpostError(
    'BLOB_STORE_UNAVAILABLE',
    `the S3 blob store ${where} could not serve ${op} (${why}); check that the S3 endpoint (--s3-endpoint, or AWS in --s3-region) is up and reachable from this replica; clients retry`,
    details,
    { cause: err },
  );
}
