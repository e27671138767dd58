import { printResult } from '../../../protocol/cli.js';
import { isModelIdPart } from '../../../protocol/ids.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { defineCommand } from '../args.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, connect } from '../target.js';

/**
 * `outpost user create` and `outpost user whoami`: the CLI side of POST /v1/users and
 * GET /v1/whoami, so that giving a developer a token needs no hand-written HTTP request.
 */
export const userCreate = defineCommand({
  usage: `outpost user create <name> [--json]

Creates a user of the cloud and prints its token (shown only here; the cloud keeps only its
sha256). The user may publish models and apps whose owner is <name>. Needs the admin token (on
the cloud's machine it is found by itself). Give the token to the developer, who passes it as
--token or OUTPOST_TOKEN.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const name = positionals[0];
    if (!isModelIdPart(name)) {
      throw new OutpostError(
        'USAGE',
        `user name "${name}" must be 1-64 letters, digits, . _ - starting with a letter or digit (it becomes the owner part of model ids)`,
        { value: name },
      );
    }
    const u = await (await connect(values, ctx)).createUser(name);
    printResult(
      ctx,
      json,
      u,
      `created user ${u.name}\ntoken: ${u.token}\n(shown only now; the user passes it as --token or OUTPOST_TOKEN)`,
    );
    return 0;
  },
});

export const userWhoami = defineCommand({
  usage: `outpost user whoami [--json]

Prints who the token belongs to and its kind (admin, user or device), as the cloud sees it.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  async run({ values, json }, ctx) {
    const client = await connect(values, ctx);
    const w = await client.whoami();
    printResult(ctx, json, { ...w, cloud: client.url }, `${w.user} (${w.kind}) on ${client.url}`);
    return 0;
  },
});
