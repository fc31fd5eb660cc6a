/**
 * The flags every `bottomless` command shares (bottomless-cli's global options, plus `--json`) and
 * their resolution, done once: the store from `-e`/`-b` over `LIBSQL_BOTTOMLESS_*`, the database
 * name from `-n` or `--db-name` (else the server's default namespace,
 * `ns-<LIBSQL_BOTTOMLESS_DATABASE_ID>:default`), and the database file in the data directory.
 */
import { Flags } from '@oclif/core';

// oclif loads every command module for help and unknown command lines (there is no manifest; see
// main.ts), so this module and the commands import nothing heavy at the top: the store, the AWS
// SDK, SQLite and date-fns are loaded by the command that runs.

export const bottomlessFlags = {
  endpoint: Flags.string({ char: 'e', helpGroup: 'STORE', description: 'S3 endpoint http(s)://host[:port], or file:///path for a local directory (default: LIBSQL_BOTTOMLESS_ENDPOINT, else AWS).' }),
  bucket: Flags.string({ char: 'b', helpGroup: 'STORE', description: 'Bucket (default: LIBSQL_BOTTOMLESS_BUCKET, else bottomless).' }),
  database: Flags.string({ char: 'd', helpGroup: 'STORE', env: 'SQLD_DB_PATH', default: 'data.sqld', description: 'sqld data directory; the database is <database>/dbs/<namespace>/data.' }),
  namespace: Flags.string({ char: 'n', helpGroup: 'STORE', exclusive: ['db-name'], description: 'Full database name, e.g. ns-<db_id>:<namespace> (default: ns-<LIBSQL_BOTTOMLESS_DATABASE_ID>:default).' }),
  'db-name': Flags.string({ helpGroup: 'STORE', exclusive: ['namespace'], description: 'Namespace; the database name becomes ns-<LIBSQL_BOTTOMLESS_DATABASE_ID>:<NAME>.' }),
  json: Flags.boolean({ default: false, description: 'Print the result as JSON on stdout.' }),
};

export * from './bottomless-target.js';
