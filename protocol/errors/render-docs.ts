import { AREAS } from './catalog.js';
import type { ErrorSpec } from './types.js';

/** Renders docs/errors.md from the catalog; the catalog test compares the file with this text. */
export function renderErrorDocs(): string {
  const lines = [
    '# Error codes',
    '',
    'Every failure a user, a script or a device report can see carries one of these stable codes,',
    'a message that says what to do, an HTTP status (cloud API and the agent socket) and a CLI exit',
    'code. This page is generated from `protocol/errors/` by `npm run docs:errors`; a test fails',
    'when the two disagree.',
    '',
    'Exit codes: 0 ok, 1 failure, 2 usage, 3 invalid input, 4 not found, 5 auth, 6 conflict,',
    '7 unavailable, 8 integrity, 9 incompatible.',
    '',
    '"retry: yes" marks a code where the same operation, tried again unchanged, can succeed (a',
    'network or disk that comes back, a busy peer): the agent retries those with back-off, and',
    'gives up on every other code until the desired state changes.',
    '',
    'Error bodies look like `{"code": "MODEL_JSON_INVALID", "message": "...", "details": {...}}`.',
  ];
  for (const [area, table] of Object.entries(AREAS)) {
    if (Object.keys(table).length === 0) continue;
    lines.push(
      '',
      `## ${area}`,
      '',
      '| code | HTTP | exit | retry | meaning and what to do |',
      '|---|---|---|---|---|',
    );
    for (const [code, spec] of Object.entries(table) as [string, ErrorSpec][]) {
      const retry = spec.retryable ? 'yes' : '';
      lines.push(`| \`${code}\` | ${spec.status} | ${spec.exit} | ${retry} | ${spec.hint.replace(/\|/g, '\\|')} |`);
    }
  }
  return lines.join('\n') + '\n';
}
