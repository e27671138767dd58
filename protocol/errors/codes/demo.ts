import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of `outpost demo` (cloud-broker/demo/): the quickstart's own failures. */
export const DEMO = {
  DEMO_AGENT_EXITED: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: 'The agent process that `outpost demo` started ended before the demo finished. The message gives its exit code and the last lines of its log (<demo dir>/device/agent.log); run `outpost agent run --config <demo dir>/device/agent.json` by hand to see it fail.',
  },
  DEMO_TIMEOUT: {
    status: 504,
    exit: EXIT.UNAVAILABLE,
    hint: 'A demo step did not finish in time (the agent socket never answered, or the device never reported the model active). The message names the step and the last state seen; raise --timeout on a slow machine, or rerun with --keep-running --data-dir DIR and inspect `outpost rollout status` and the agent log.',
    retryable: true,
  },
} as const satisfies ErrorTable;
