import { verifyCommand, type VerifiedCommand } from '../../protocol/command.js';
import { toOutpostError } from '../../protocol/errors/index.js';
import type { NonceStore } from './nonce-store.js';
import type { TrustStore } from './trust-store.js';

/**
 * The gate every imperative command passes before the daemon runs it: signature by the trusted
 * root's online key (walking the root chain once when the key is unknown, as for desired states),
 * binding to this device and topic, time window, then the nonce, claimed and persisted before the
 * command runs. Throws the refusal's coded error.
 */
export type CommandGate = (name: string, payload: Buffer) => Promise<VerifiedCommand>;

export function createCommandGate(o: {
  deviceId: string;
  trust: TrustStore;
  nonces: NonceStore;
  now?: () => Date;
}): CommandGate {
  const check = (name: string, payload: Buffer): VerifiedCommand => {
    const online = o.trust.online();
    return verifyCommand(payload, {
      trustedKeys: online.keys,
      revoked: online.revoked,
      deviceId: o.deviceId,
      topicCommand: name,
      now: o.now?.() ?? new Date(),
    });
  };
  return async (name, payload) => {
    let cmd: VerifiedCommand;
    try {
      cmd = check(name, payload);
    } catch (err) {
      const code = toOutpostError(err).code;
      if ((code !== 'COMMAND_UNTRUSTED_KEY' && code !== 'TRUST_ROOT_EXPIRED') || !(await o.trust.refresh())) throw err;
      cmd = check(name, payload);
    }
    // Claimed with the time of the claim, not of the check: a walk in between may have taken a while.
    o.nonces.claim(cmd.nonce, Date.parse(cmd.expires), (o.now?.() ?? new Date()).getTime());
    return cmd;
  };
}
