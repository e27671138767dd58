// The check is shared with the cloud's plan, so it lives in protocol/; the agent's name for it stays.
export { compatibilityCheck, type CompatibilityInput } from '../../protocol/compatibility.js';
