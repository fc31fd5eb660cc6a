/**
 * Starts the admin shell on a terminal and resolves when it quits. Only `libsqlctl admin-shell`
 * imports this module, so Ink and React load for that command alone.
 */
import { render } from 'ink';
import { AdminClient } from './api/admin-client.js';
import { SqlClient } from './api/sql-client.js';
import { App } from './app.js';

export interface ShellOptions {
  adminUrl: string;
  authKey?: string | undefined;
  /** The user port for the SQL console (`--http-url`). */
  httpUrl?: string | undefined;
  namespace?: string | undefined;
  refreshMs?: number | undefined;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
}

export async function runShell(options: ShellOptions): Promise<void> {
  const admin = new AdminClient({ baseUrl: options.adminUrl, authKey: options.authKey });
  const sql = options.httpUrl === undefined ? null : new SqlClient({ baseUrl: options.httpUrl });
  const instance = render(<App admin={admin} sql={sql} initialNamespace={options.namespace} refreshMs={options.refreshMs} />, {
    stdin: options.stdin ?? process.stdin,
    stdout: options.stdout ?? process.stdout,
    exitOnCtrlC: true,
    patchConsole: true,
  });
  await instance.waitUntilExit();
}
