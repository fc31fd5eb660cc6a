import { Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { ConfigError, LibsqlctlError } from '../errors.js';

/** A base URL flag: http(s) only, no trailing slash needed. */
function checkUrl(value: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('CONFIG_BAD_URL', `${flag}: not a URL: ${value}`, { hint: `${flag} http://127.0.0.1:PORT` });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('CONFIG_BAD_URL', `${flag}: only http:// and https:// URLs: ${value}`, { hint: `${flag} http://127.0.0.1:PORT` });
  return value.replace(/\/+$/, '');
}

export default class AdminShell extends BaseCommand {
  static override description = 'Terminal UI over the admin API: namespaces, stats, config, checkpoint, create/fork/delete, and a SQL console.';

  static override examples = [
    '<%= config.bin %> admin-shell --admin-api-url http://127.0.0.1:9090',
    '<%= config.bin %> admin-shell --admin-api-url http://127.0.0.1:9090 --auth s3cret --http-url http://127.0.0.1:8080 --namespace books',
  ];

  static override flags = {
    'admin-api-url': Flags.string({ required: true, description: 'The admin API (serve --admin-listen-addr), e.g. http://127.0.0.1:9090.' }),
    auth: Flags.string({ env: 'LIBSQL_ADMIN_AUTH_KEY', description: 'The admin key (serve --admin-auth-key), sent as `authorization: Basic <KEY>`.' }),
    namespace: Flags.string({ description: 'Open the SQL console on this namespace at start.' }),
    'http-url': Flags.string({ description: 'The user port (serve --http-listen-addr), for the SQL console: Hrana over HTTP with x-namespace.' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(AdminShell);
    const adminUrl = checkUrl(flags['admin-api-url'], '--admin-api-url');
    const httpUrl = flags['http-url'] === undefined ? undefined : checkUrl(flags['http-url'], '--http-url');
    if (!process.stdin.isTTY || !process.stdout.isTTY) {
      throw new LibsqlctlError('NOT_A_TERMINAL', `admin-shell is interactive: its ${process.stdin.isTTY ? 'output' : 'input'} is not a terminal`, {
        hint: 'run it in a terminal; scripts can call the admin API directly (docs/ADMIN.md)',
      });
    }
    // Ink and React load only here: other commands start without them.
    const { runShell } = await import('../shell/run-shell.js');
    await runShell({ adminUrl, authKey: flags.auth, httpUrl, namespace: flags.namespace });
  }
}
