import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the cloud catalog, blob store, tokens and HTTP API. */
export const CATALOG = {
  AUTH_TOKEN_MISSING: {
    status: 401,
    exit: EXIT.AUTH,
    hint: "No token was sent. Pass --token or set OUTPOST_TOKEN; the local cloud's admin token is in <data dir>/admin.token.",
  },
  AUTH_TOKEN_INVALID: {
    status: 401,
    exit: EXIT.AUTH,
    hint: 'The token is not known to this cloud (mistyped, revoked, or from another cloud). Ask the admin for a token (`outpost user create <name>`, or `POST /v1/users`).',
  },
  AUTH_FORBIDDEN: {
    status: 403,
    exit: EXIT.AUTH,
    hint: 'The token is valid but its kind may not do this (a device token can only read; only the admin may create users).',
  },
  AUTH_OWNER_FORBIDDEN: {
    status: 403,
    exit: EXIT.AUTH,
    hint: "A user may write only models and apps whose owner is their own user name. Change the id's owner or use that owner's token.",
  },
  CLOUD_UNREACHABLE: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The cloud could not be reached. Check --cloud / OUTPOST_CLOUD_URL, or start a local one with `outpost cloud start`.',
    retryable: true,
  },
  CLOUD_BAD_RESPONSE: {
    status: 502,
    exit: EXIT.UNAVAILABLE,
    hint: 'The cloud answered with something that is not an Outpost API answer. Check that the URL points at an Outpost cloud.',
    retryable: true,
  },
  CLOUD_LISTEN_FAILED: {
    status: 500,
    exit: EXIT.UNAVAILABLE,
    hint: 'The cloud could not listen on the asked host and port (in use, or not allowed). Pick another port or pass 0 for a free one.',
    retryable: true,
  },
  CLOUD_DB_TOO_NEW: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: 'The database in the data dir was written by a newer Outpost. Upgrade Outpost or point --data-dir at another folder.',
  },
  CLOUD_DB_UNAVAILABLE: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The cloud could not reach its PostgreSQL database in time (connect, query or lock wait). Check that the server runs and accepts connections at the --database URL (host, port, database, user, password), and that no long transaction holds the lock.',
    retryable: true,
  },
  CLOUD_DB_URL_INVALID: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'The --database value is not a database URL. Give postgres://user:password@host:5432/database (or postgresql://), or leave it out for SQLite in the data dir.',
  },
  HTTP_BODY_TOO_LARGE: {
    status: 413,
    exit: EXIT.INVALID_INPUT,
    hint: 'The JSON request body is larger than the limit. Files go to PUT /v1/blobs, never inside JSON.',
  },
  HTTP_BODY_INVALID_JSON: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The request body is not valid JSON (or not a JSON object). Send Content-Type application/json with one object.',
  },
  HTTP_LENGTH_REQUIRED: {
    status: 411,
    exit: EXIT.INVALID_INPUT,
    hint: 'A blob upload needs a Content-Length header equal to the blob size (chunked uploads are refused).',
  },
  HTTP_METHOD_NOT_ALLOWED: {
    status: 405,
    exit: EXIT.USAGE,
    hint: 'This route exists but not with this HTTP method. See docs/http-api.md.',
  },
  HTTP_RANGE_NOT_SATISFIABLE: {
    status: 416,
    exit: EXIT.INVALID_INPUT,
    hint: 'The Range header asks for bytes outside the blob or is malformed; only one range (bytes=a-b, a-, -n) is served.',
  },
  HTTP_TOO_MANY_STREAMS: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The cloud already serves as many live event streams (GET /v1/events) as it allows. Close another browser tab of the page, or retry in a moment.',
  },
  UI_NOT_BUILT: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The web page is not built into this installation. Run `npm run build` (it bundles cloud-broker/ui/) and reload.',
  },
  BLOB_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'No blob with this sha256 is stored. Upload it with PUT /v1/blobs/<sha256> first.',
  },
  BLOB_HASH_MISMATCH: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'The uploaded bytes do not hash to the sha256 in the URL; nothing was stored. Re-hash the file and upload again.',
  },
  BLOB_UPLOAD_INCOMPLETE: {
    status: 400,
    exit: EXIT.UNAVAILABLE,
    hint: 'The upload ended before Content-Length bytes arrived (connection cut); nothing was stored. Upload again.',
    retryable: true,
  },
  BLOB_STORE_UNAVAILABLE: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The S3 blob store (--blob-store s3://...) could not be reached, timed out, throttled or answered with a server error. Check that the endpoint (--s3-endpoint, or AWS in --s3-region) is up and reachable from the replica; devices and uploads retry, and nothing half-written becomes visible.',
    retryable: true,
  },
  BLOB_STORE_REFUSED: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The S3 blob store refused the cloud: wrong or missing credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE), a bucket that does not exist, the wrong --s3-region or addressing, or a policy without s3:GetObject, s3:PutObject, s3:ListBucket and s3:AbortMultipartUpload. The operator must fix the replica; the message names the S3 error.',
  },
  CLOUD_BLOB_STORE_FLAGS: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'The blob-store flags of `outpost cloud start` do not fit: --blob-dir DIR and --blob-store s3://BUCKET[/PREFIX] exclude each other, --s3-endpoint, --s3-region and --s3-addressing (path or virtual) need --blob-store, and each value must be well-formed. Run `outpost cloud start --help`.',
  },
  CATALOG_MANIFEST_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The manifest sent with a version is not a valid alwaysai.model.json object, or names a file missing from the file list.',
  },
  CATALOG_ID_MISMATCH: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The id inside the manifest differs from the owner/name in the URL. Fix the "id" field of alwaysai.model.json.',
  },
  CATALOG_FILE_PATH_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A file path of the version is not a relative path inside the model folder (absolute, "..", backslash or duplicate).',
  },
  CATALOG_FILE_MISSING: {
    status: 422,
    exit: EXIT.INVALID_INPUT,
    hint: 'A file of the version names a blob that is not uploaded. Upload every file with PUT /v1/blobs before creating the version.',
  },
  CATALOG_FILE_SIZE_MISMATCH: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A file of the version gives a size that differs from the stored blob with that sha256. Re-hash the files and publish again.',
  },
  CATALOG_MODEL_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'No such model, or it is private to another owner. Check the owner/name with `outpost model list`.',
  },
  CATALOG_VERSION_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'The model has no such version. List its versions with `outpost model versions <id>`.',
  },
  CATALOG_APP_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'The catalog has no model list for this app yet. Add a model with `outpost app models add` first.',
  },
  CATALOG_VERSION_IMMUTABLE: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'A published version never changes. Publish a new version instead.',
  },
  CATALOG_USER_EXISTS: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'A user with this name already exists. Pick another name.',
  },
} as const satisfies ErrorTable;
