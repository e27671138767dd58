export { createVersion, listModels, getModel, getVersion, versionDigest } from './models.js';
export { parseVersionBody, parseFilePath, type VersionBody } from './parse-version-body.js';
export { createUser, parseUserName } from './users.js';
export { getApp, putApp, parseAppBody } from './apps.js';
export { canonicalJson } from './canonical.js';
