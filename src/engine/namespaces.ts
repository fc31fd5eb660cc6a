import path from 'node:path';
import { NotFoundError } from '../errors.js';
import { NamespaceDb, type NamespaceDbOptions } from './namespace-db.js';

export interface NamespacesOptions {
  /** `--db-path` */
  dbPath: string;
  txnTimeoutMs: number;
  /** Frame capture settings for every namespace (null: no replication log). */
  capture: NamespaceDbOptions['capture'];
  /** Called once for every namespace database right after it opened (frame capture, backup). */
  onOpen?: (db: NamespaceDb) => void;
}

export const DEFAULT_NAMESPACE = 'default';

/** The set of namespace databases under `<db-path>/dbs/`, opened lazily and kept open. */
export class Namespaces {
  private readonly open = new Map<string, NamespaceDb>();

  constructor(private readonly opts: NamespacesOptions) {}

  /** Returns the namespace, opening it on first use. Only `default` is created implicitly. */
  get(name: string): NamespaceDb {
    const existing = this.open.get(name);
    if (existing) return existing;
    if (name !== DEFAULT_NAMESPACE) {
      throw new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${name}\` doesn't exist`);
    }
    return this.openNamespace(name);
  }

  list(): NamespaceDb[] {
    return [...this.open.values()];
  }

  private openNamespace(name: string): NamespaceDb {
    const db = new NamespaceDb({ dir: path.join(this.opts.dbPath, 'dbs', name), name, txnTimeoutMs: this.opts.txnTimeoutMs, capture: this.opts.capture });
    db.open();
    this.opts.onOpen?.(db);
    this.open.set(name, db);
    return db;
  }

  close(): void {
    const errors: unknown[] = [];
    for (const db of this.open.values()) {
      try {
        db.close();
      } catch (err) {
        errors.push(err);
      }
    }
    this.open.clear();
    if (errors.length > 0) throw errors[0];
  }
}
