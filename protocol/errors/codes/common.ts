import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes that any part of Outpost may raise. */
export const COMMON = {
  INTERNAL: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: 'An unexpected failure. The log has the details; please report it with the log lines around it.',
  },
  USAGE: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'The command line is wrong (unknown verb, flag or value). Run the command with --help.',
  },
  BAD_REQUEST: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The request body or parameters are invalid; the message names the field.',
  },
  NOT_FOUND: { status: 404, exit: EXIT.NOT_FOUND, hint: 'No such route or resource. Check the path or id.' },
  IO_ERROR: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: 'A file could not be read or written. Check permissions and free space on the named path.',
    retryable: true,
  },
} as const satisfies ErrorTable;
