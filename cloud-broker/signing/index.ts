export { createSigner, type Signer } from './sign.js';
export { loadOrCreateSigner, SIGNING_KEY_FILE } from './keys.js';
