import fs from 'node:fs';
import { LibsqlctlError, NotFoundError } from '../errors.js';
import type { DataDirPaths, NamespacePaths } from './data-dir.js';
import type { FaultInjector } from './faults.js';
import { errorMessage, type Logger } from './logger.js';
import { configFromRecord, configToRecord, DEFAULT_NAMESPACE_CONFIG, type NamespaceConfig, type NamespaceSettings } from './namespace-config.js';
import { NamespaceDb } from './namespace-db.js';
import { checkNamespaceName, InvalidNamespaceNameError, isValidNamespaceName } from './namespace-name.js';
import { NamespaceStats } from './namespace-stats.js';
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
  /**
   * Called after a namespace database closed while the server goes on (unloaded while idle, or
   * deleted), so what onOpen attached lets go; not at shutdown. Its failure is logged.
   */
  onClose?: (db: NamespaceDb, event: CloseEvent) => Promise<void>;
  /**
   * `--max-active-namespaces`: databases open at once before idle ones are unloaded, least recently
   * used first (default: no limit). More stay open while all of them are in use.
   */
  maxActive?: number;
  /** Work outside the database that keeps a namespace from being unloaded (backup uploads pending). */
  isBusy?: (name: string) => boolean;
}

/**
 * A namespace is unloaded only after this long without a request resolving it: a request that
 * resolved its database a moment ago may not have opened its connection yet.
 */
export const UNLOAD_GRACE_MS = 1000;

export const DEFAULT_NAMESPACE = 'default';

/** Why a namespace closed while the server runs; `keepBackup`: a delete that keeps its backups. */
export type CloseEvent = { why: 'unloaded' } | { why: 'deleted'; keepBackup: boolean };

/** A namespace created under a name that exists already (HTTP 400, sqld's text). */
export class NamespaceExistsError extends LibsqlctlError {
  constructor(name: string) {
    super('NAMESPACE_ALREADY_EXISTS', `Namespace \`${name}\` already exists`);
  }
}

function doesntExist(name: string): NotFoundError {
  return new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${name}\` doesn't exist`);
}

/**
 * The namespaces of a data directory: which exist is the registry's word; databases are opened
 * lazily (concurrent first requests share one open) and kept open until close().
 */
export class Namespaces {
  private readonly open = new Map<string, NamespaceDb>();
  private readonly opening = new Map<string, Promise<NamespaceDb>>();
  /** Names being created (not registered yet: requests get 404, a second create 400). */
  private readonly creating = new Set<string>();
  private readonly deleting = new Map<string, Promise<void>>();
  /** Namespaces being unloaded (idle, over `maxActive`): a request for one waits and reopens it. */
  private readonly unloading = new Map<string, Promise<void>>();
  /** When each open namespace was last resolved by get() (performance.now()). */
  private readonly lastUsed = new Map<string, number>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweepQueued = false;
  /** Statement counters per namespace, kept while a namespace closes and reopens. */
  private readonly stats = new Map<string, NamespaceStats>();
  private closing: Promise<void> | null = null;
  readonly registry: NamespaceRegistry;

  constructor(private readonly opts: NamespacesOptions) {
    this.registry = NamespaceRegistry.load(opts.dataDir);
  }

  /** Returns the namespace, opening it on first use. Only `default` is created implicitly. */
  get(name: string): Promise<NamespaceDb> {
    const existing = this.getOpen(name);
    if (existing) return Promise.resolve(existing);
    if (this.closing) return Promise.reject(new Error('the server is shutting down'));
    const known = this.exists(name);
    // An unknown name that breaks our rules is not asked of a primary either: it would become a path.
    if ((!known && (!this.opts.admit || !isValidNamespaceName(name))) || this.deleting.has(name)) return Promise.reject(doesntExist(name));
    let pending = this.opening.get(name);
    if (!pending) {
      const unloading = this.unloading.get(name);
      const open = (): Promise<NamespaceDb> => (known ? this.openNamespace(name) : this.admitAndOpen(name));
      pending = (unloading ? unloading.then(open) : open()).finally(() => this.opening.delete(name));
      this.opening.set(name, pending);
    }
    return pending;
  }

  /** `get` of a namespace that is open already (marked used, as `get` does), without a turn of the promise queue; else undefined. */
  getOpen(name: string): NamespaceDb | undefined {
    const existing = this.open.get(name);
    if (existing && this.opts.maxActive !== undefined) this.lastUsed.set(name, performance.now());
    return existing;
  }

  /** An already open namespace, without opening it. */
  peek(name: string): NamespaceDb | undefined {
    return this.open.get(name);
  }

  list(): NamespaceDb[] {
    return [...this.open.values()];
  }

  /** Whether the namespace exists here (`default` always does: it is made on first use). */
  exists(name: string): boolean {
    return name === DEFAULT_NAMESPACE || this.registry.has(name);
  }

  /** Every existing namespace, sorted (`default` included). */
  names(): string[] {
    const names = this.registry.names();
    if (!names.includes(DEFAULT_NAMESPACE)) names.push(DEFAULT_NAMESPACE);
    return names.sort();
  }

  /** A namespace's settings (defaults for one never configured). */
  config(name: string): NamespaceConfig {
    const entry = this.registry.get(name);
    return entry ? configFromRecord(entry.config) : DEFAULT_NAMESPACE_CONFIG;
  }

  /** The statement counters of a namespace (open or not). */
  statsOf(name: string): NamespaceStats {
    let stats = this.stats.get(name);
    if (!stats) {
      stats = new NamespaceStats();
      this.stats.set(name, stats);
    }
    return stats;
  }

  /**
   * Replaces a namespace's settings and bumps its config version; an open database takes them at
   * once (its connections at their next statement). Returns the new config.
   */
  setConfig(name: string, settings: NamespaceSettings): NamespaceConfig {
    if (!this.exists(name)) throw doesntExist(name);
    const next: NamespaceConfig = { ...settings, version: this.config(name).version + 1 };
    if (this.registry.has(name)) this.registry.setConfig(name, configToRecord(next));
    else this.registry.add(name, configToRecord(next));
    this.open.get(name)?.applyConfig(next);
    return next;
  }

  /**
   * Creates a namespace with these settings; `load` fills its database (a dump) before it becomes
   * visible. All or nothing: until it is registered requests get 404 and a second create of the
   * name 400; a failure leaves no folder behind. `default` exists always: creating it again only
   * replaces its settings (as in sqld), unless it comes with a dump. `seed` writes the database file
   * into the new, empty folder before it opens (a fork); `default` cannot be seeded.
   */
  create(name: string, settings: NamespaceSettings, load?: (db: NamespaceDb) => Promise<void>, seed?: (paths: NamespacePaths) => Promise<void>): Promise<NamespaceDb> {
    try {
      checkNamespaceName(name);
      if (this.closing) throw new Error('the server is shutting down');
      if (this.registry.has(name) || this.creating.has(name) || this.deleting.has(name) || this.open.has(name) || this.opening.has(name)) {
        if (name !== DEFAULT_NAMESPACE || load || seed || this.creating.has(name) || this.deleting.has(name)) throw new NamespaceExistsError(name);
        this.setConfig(name, settings);
        return this.get(name);
      }
      const clash = [...this.registry.names(), ...this.creating].find((n) => n.toLowerCase() === name.toLowerCase());
      if (clash !== undefined) throw new InvalidNamespaceNameError(`the name differs only in case from the existing namespace "${clash}"`);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.creating.add(name);
    const pending = this.createNamespace(name, { ...settings, version: DEFAULT_NAMESPACE_CONFIG.version }, load, seed).finally(() => {
      this.creating.delete(name);
      this.opening.delete(name);
    });
    this.opening.set(name, pending);
    return pending;
  }

  private async createNamespace(
    name: string,
    config: NamespaceConfig,
    load?: (db: NamespaceDb) => Promise<void>,
    seed?: (paths: NamespacePaths) => Promise<void>,
  ): Promise<NamespaceDb> {
    const paths = this.opts.dataDir.namespace(name);
    // The registry is the word on what exists: a folder without an entry is a create that did not finish.
    fs.rmSync(paths.dir, { recursive: true, force: true });
    const removeFiles = (): void => fs.rmSync(paths.dir, { recursive: true, force: true });
    let db: NamespaceDb;
    try {
      if (seed) {
        fs.mkdirSync(paths.dir, { recursive: true });
        await seed(paths);
      }
      db = await this.openDb(name, paths, config);
    } catch (err) {
      removeFiles();
      throw err;
    }
    try {
      await load?.(db);
      if (this.closing) throw new Error('the server is shutting down');
      this.registry.add(name, configToRecord(config));
    } catch (err) {
      await db.close().catch(() => undefined);
      removeFiles();
      throw err;
    }
    this.opened(name, db);
    try {
      await this.opts.onOpen?.(db);
    } catch (err) {
      this.open.delete(name);
      this.registry.remove(name);
      await db.close().catch(() => undefined);
      removeFiles();
      throw err;
    }
    return db;
  }

  /**
   * Deletes a namespace: unregistered first (new requests get 404), then its database closes (open
   * transactions roll back, streams end) and its folder is removed. `default` is made again on its
   * next use, as in sqld. `keepBackup` is told to onClose (backups: upload what is left, or not).
   */
  delete(name: string, opts: { keepBackup?: boolean } = {}): Promise<void> {
    if (!this.registry.has(name) || this.deleting.has(name)) return Promise.reject(doesntExist(name));
    if (this.closing) return Promise.reject(new Error('the server is shutting down'));
    this.registry.remove(name);
    const pending = (async () => {
      await this.unloading.get(name);
      await this.opening.get(name)?.catch(() => undefined);
      const db = this.open.get(name);
      this.open.delete(name);
      this.lastUsed.delete(name);
      if (db) {
        await db.close();
        await this.afterClose(db, { why: 'deleted', keepBackup: opts.keepBackup ?? false });
      }
      this.stats.delete(name);
      fs.rmSync(this.opts.dataDir.namespace(name).dir, { recursive: true, force: true });
    })().finally(() => this.deleting.delete(name));
    this.deleting.set(name, pending);
    return pending;
  }

  private async admitAndOpen(name: string): Promise<NamespaceDb> {
    if (!(await this.opts.admit?.(name))) throw doesntExist(name);
    return this.openNamespace(name);
  }

  private async openDb(name: string, paths: NamespacePaths, config: NamespaceConfig): Promise<NamespaceDb> {
    await this.opts.prepare?.(name, paths);
    const db = new NamespaceDb({
      paths,
      name,
      config,
      stats: this.statsOf(name),
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
    return db;
  }

  private async openNamespace(name: string): Promise<NamespaceDb> {
    this.registry.add(name);
    const db = await this.openDb(name, this.opts.dataDir.namespace(name), this.config(name));
    // A config change while it opened: take the newest.
    if (db.config.version !== this.config(name).version) db.applyConfig(this.config(name));
    this.opened(name, db);
    try {
      await this.opts.onOpen?.(db);
    } catch (err) {
      this.open.delete(name);
      await db.close();
      throw err;
    }
    return db;
  }

  private opened(name: string, db: NamespaceDb): void {
    this.open.set(name, db);
    if (this.opts.maxActive === undefined) return;
    this.lastUsed.set(name, performance.now());
    if (this.open.size > this.opts.maxActive) this.queueSweep();
  }

  /**
   * Unloads idle namespaces, least recently used first, while more than `maxActive` are open. Runs
   * after the current callbacks (setImmediate): a request that just resolved a namespace has opened
   * its connection by then. Namespaces in use stay; a timer looks again while too many are open.
   */
  private queueSweep(): void {
    if (this.sweepQueued || this.closing) return;
    this.sweepQueued = true;
    setImmediate(() => {
      this.sweepQueued = false;
      this.sweep();
    });
  }

  /** Runs from a timer or setImmediate: a failure is logged, never thrown. */
  private sweep(): void {
    try {
      this.sweepOnce();
    } catch (err) {
      this.opts.logger.error({ err }, `unloading idle namespaces failed: ${errorMessage(err)}`);
    }
  }

  private sweepOnce(): void {
    const max = this.opts.maxActive;
    if (max === undefined || this.closing) return;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    let excess = this.open.size - max;
    if (excess <= 0) return;
    const now = performance.now();
    const byAge = [...this.open.keys()].sort((a, b) => (this.lastUsed.get(a) ?? 0) - (this.lastUsed.get(b) ?? 0));
    let waitMs: number | null = null;
    for (const name of byAge) {
      if (excess <= 0) break;
      const db = this.open.get(name)!;
      if (!db.unused || db.role?.kind === 'replica' || this.opts.isBusy?.(name) === true) continue;
      const since = now - (this.lastUsed.get(name) ?? 0);
      if (since < UNLOAD_GRACE_MS) {
        waitMs = Math.min(waitMs ?? Infinity, UNLOAD_GRACE_MS - since);
        continue;
      }
      this.unload(name, db);
      excess--;
    }
    // Still too many: look again once the youngest candidate's grace ends (or a second from now).
    if (excess > 0) {
      this.sweepTimer = setTimeout(() => this.sweep(), Math.ceil(waitMs ?? UNLOAD_GRACE_MS));
      this.sweepTimer.unref();
    }
  }

  private unload(name: string, db: NamespaceDb): void {
    this.open.delete(name);
    this.lastUsed.delete(name);
    this.opts.logger.info({ namespace: name, open: this.open.size, maxActive: this.opts.maxActive }, `namespace ${name} unloaded (idle, more than --max-active-namespaces open); it opens again on its next request`);
    const pending = (async () => {
      try {
        await db.close();
      } catch (err) {
        this.opts.logger.error({ err, namespace: name }, `namespace ${name}: closing it failed: ${errorMessage(err)}`);
      }
      await this.afterClose(db, { why: 'unloaded' });
    })().finally(() => this.unloading.delete(name));
    this.unloading.set(name, pending);
  }

  private async afterClose(db: NamespaceDb, event: CloseEvent): Promise<void> {
    try {
      await this.opts.onClose?.(db, event);
    } catch (err) {
      this.opts.logger.error({ err, namespace: db.name }, `namespace ${db.name}: letting go of it after it closed failed: ${errorMessage(err)}`);
    }
  }

  /** Namespaces unloading now have closed (tests). */
  async unloaded(): Promise<void> {
    await Promise.allSettled([...this.unloading.values()]);
  }

  /** Closes every namespace (waiting for those still opening); throws the first error at the end. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.sweepTimer) clearTimeout(this.sweepTimer);
      this.sweepTimer = null;
      await Promise.allSettled([...this.opening.values(), ...this.deleting.values(), ...this.unloading.values()]);
      const results = await Promise.allSettled([...this.open.values()].map((db) => db.close()));
      this.open.clear();
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    })();
    return this.closing;
  }
}
