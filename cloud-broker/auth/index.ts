export {
  createToken,
  verifyToken,
  revokeTokens,
  hashToken,
  TOKEN_KINDS,
  type Principal,
  type TokenKind,
} from './tokens.js';
export { ensureAdminToken, ADMIN_TOKEN_FILE } from './admin-token.js';
export { authenticate, authorize, authorizeOwner, canRead, type Access } from './policy.js';
