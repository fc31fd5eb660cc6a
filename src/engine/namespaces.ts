import { NotFoundError } from '../errors.js';
import type { DataDirPaths, NamespacePaths } from './data-dir.js';
import type { FaultInjector } from './faults.js';
import type { Logger } from './logger.js';
import { NamespaceDb } from './namespace-db.js';
import { NamespaceRegistry } from './registry/namespace-registry.js';
import type { DbRole } from './roles/role.js';
import type { StatementWatchdog } from './watchdog.js';

export interface NamespacesOptions {
  dataDir: DataDirPaths;
  txnTimeoutMs: number;
  /** Builds each namespace's role (primary or replica); null = no role (engine-core tests). */
  role: (name: string) => DbRole | null;
  logger: Logger;
  faults?: FaultInjector;
  /** Absolute paths of the trusted extensions loaded into every client connection (`--extensions-path`). */
  extensions?: readonly string[];
  /** Interrupts client statements that run too long (`--max-statement-duration-s`); none = no limit. */
  watchdog?: StatementWatchdog | null;
  /**
   * Asked about a namespace the registry does not know (a replica asks its primary): true registers
   * and opens it. Without it, only registered namespaces (and `default`) exist.
   */
  admit?: (name: string) => Promise<boolean>;
  /** Runs before a namespace's database opens (backups: restore into an empty directory first). */
  prepare?: (name: string, paths: NamespacePaths) => Promise<void>;
  /** Called once for every namespace database right after it opened (backups, metrics); a failure fails the open. */
  onOpen?: (db: NamespaceDb) => void | Promise<void>;
}

export const DEFAULT_NAMESPACE = 'default';

/**
 * The namespaces of a data directory: which exist is the registry's word; databases are opened
 * lazily (concurrent first requests share one open) and kept open until close().
 */
export class Namespaces {
  private readonly open = new Map<string, NamespaceDb>();
  private readonly opening = new Map<string, Promise<NamespaceDb>>();
  private closing: Promise<void> | null = null;
  readonly registry: NamespaceRegistry;

  constructor(private readonly opts: NamespacesOptions) {
    this.registry = NamespaceRegistry.load(opts.dataDir);
  }

  /** Returns the namespace, opening it on first use. Only `default` is created implicitly. */
  get(name: string): Promise<NamespaceDb> {
    const existing = this.open.get(name);
    if (existing) return Promise.resolve(existing);
    if (this.closing) return Promise.reject(new Error('the server is shutting down'));
    const known = name === DEFAULT_NAMESPACE || this.registry.has(name);
    if (!known && !this.opts.admit) {
      return Promise.reject(new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${name}\` doesn't exist`));
    }
    let pending = this.opening.get(name);
    if (!pending) {
      pending = (known ? this.openNamespace(name) : this.admitAndOpen(name)).finally(() => this.opening.delete(name));
      this.opening.set(name, pending);
    }
    return pending;
  }

  /** An already open namespace, without opening it. */
  peek(name: string): NamespaceDb | undefined {
    return this.open.get(name);
  }

  list(): NamespaceDb[] {
    return [...this.open.values()];
  }

  private async admitAndOpen(name: string): Promise<NamespaceDb> {
    if (!(await this.opts.admit?.(name))) throw new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${name}\` doesn't exist`);
    return this.openNamespace(name);
  }

  private async openNamespace(name: string): Promise<NamespaceDb> {
    this.registry.add(name);
    const paths = this.opts.dataDir.namespace(name);
    await this.opts.prepare?.(name, paths);
    const db = new NamespaceDb({
      paths,
      name,
      txnTimeoutMs: this.opts.txnTimeoutMs,
      role: this.opts.role(name),
      logger: this.opts.logger.child({ namespace: name }),
      ...(this.opts.faults ? { faults: this.opts.faults } : {}),
      ...(this.opts.extensions ? { extensions: this.opts.extensions } : {}),
      ...(this.opts.watchdog ? { watchdog: this.opts.watchdog } : {}),
    });
    await db.open();
    if (this.closing) {
      await db.close();
      throw new Error('the server is shutting down');
    }
    this.open.set(name, db);
    try {
      await this.opts.onOpen?.(db);
    } catch (err) {
      this.open.delete(name);
      await db.close();
      throw err;
    }
    return db;
  }

  /** Closes every namespace (waiting for those still opening); throws the first error at the end. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.opening.values()]);
      const results = await Promise.allSettled([...this.open.values()].map((db) => db.close()));
      this.open.clear();
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    })();
    return this.closing;
  }
}
