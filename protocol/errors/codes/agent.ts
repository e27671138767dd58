import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the agent daemon: config, systemd, telemetry. */
export const AGENT = {
  CONFIG_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A value in the agent config (/etc/outpost/agent.json or an OUTPOST_* variable) is wrong; the message names the key, the value and where it came from. Fix it and run `outpost agent check-config`.',
  },
  CONFIG_UNKNOWN_KEY: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The agent config has a key Outpost does not know (often a typo). The message names it and the closest known key; rename or remove it. docs/configuration.md lists every key.',
  },
  CONFIG_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'The agent config file does not exist. Write it (`outpost device provision` prints one), or point --config / OUTPOST_CONFIG at it.',
  },
  CONFIG_NOT_JSON: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "The agent config file is not valid JSON (the message gives the parser's position). Fix the syntax and run `outpost agent check-config`.",
  },
  SERVICE_INSTALL_FAILED: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: '`outpost agent install-service` could not put a unit, snippet or config in place, or a systemctl step failed. The message names the file or command; run it with --dry-run to see every step.',
  },
  SHUTDOWN_TIMEOUT: {
    status: 503,
    exit: EXIT.FAILURE,
    hint: 'Shutdown handlers did not finish before their deadline, so the agent exited anyway. Look in the log for the handler that was still running; nothing already installed is lost.',
  },
  NOTIFY_FAILED: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: 'The agent could not send a message to systemd on NOTIFY_SOCKET. Check that the unit is Type=notify and that the socket path is reachable; the agent keeps running.',
  },
} as const satisfies ErrorTable;
