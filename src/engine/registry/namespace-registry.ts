/**
 * The namespace registry: the one source of truth for which namespaces exist, persisted in the data
 * directory (`metastore/namespaces.json`; sqld keeps its own in `metastore/`). Read at start-up;
 * every change is written atomically (temporary file, fsync, rename) before it takes effect.
 */
import fs from 'node:fs';
import type { DataDirPaths } from '../data-dir.js';
import { writeAtomically } from '../wal/fs-util.js';

export interface NamespaceEntry {
  /** ISO time the namespace was registered. */
  createdAt: string;
  /** Per-namespace settings (the admin API's config); opaque to the registry. */
  config: Record<string, unknown>;
}

interface RegistryFile {
  version: 1;
  namespaces: Record<string, NamespaceEntry>;
}

export class NamespaceRegistry {
  private constructor(
    private readonly paths: DataDirPaths,
    private readonly entries: Map<string, NamespaceEntry>,
  ) {}

  /**
   * Loads the registry. A data directory from before the registry existed gets one listing the
   * namespace folders it holds.
   */
  static load(paths: DataDirPaths): NamespaceRegistry {
    let text: string | null = null;
    try {
      text = fs.readFileSync(paths.registry, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text === null) {
      const entries = new Map<string, NamespaceEntry>();
      const existing = fs.existsSync(paths.dbs) ? fs.readdirSync(paths.dbs, { withFileTypes: true }) : [];
      for (const d of existing) if (d.isDirectory()) entries.set(d.name, { createdAt: new Date().toISOString(), config: {} });
      const registry = new NamespaceRegistry(paths, entries);
      try {
        if (entries.size > 0) registry.save();
      } catch {
        // A full disk must not stop the server from serving what it has: written at the next change.
      }
      return registry;
    }
    let parsed: RegistryFile;
    try {
      parsed = JSON.parse(text) as RegistryFile;
      if (parsed.version !== 1 || typeof parsed.namespaces !== 'object' || parsed.namespaces === null) throw new Error('unknown format');
    } catch (err) {
      throw new Error(`the namespace registry ${paths.registry} is unreadable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return new NamespaceRegistry(paths, new Map(Object.entries(parsed.namespaces)));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  get(name: string): NamespaceEntry | undefined {
    return this.entries.get(name);
  }

  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  /** Registers a namespace (idempotent for an existing one: its entry is kept). */
  add(name: string, config: Record<string, unknown> = {}): NamespaceEntry {
    const existing = this.entries.get(name);
    if (existing) return existing;
    const entry = { createdAt: new Date().toISOString(), config };
    this.entries.set(name, entry);
    try {
      this.save();
    } catch (err) {
      this.entries.delete(name);
      throw err;
    }
    return entry;
  }

  setConfig(name: string, config: Record<string, unknown>): void {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`namespace ${name} is not registered`);
    const before = entry.config;
    entry.config = config;
    try {
      this.save();
    } catch (err) {
      entry.config = before;
      throw err;
    }
  }

  remove(name: string): boolean {
    const entry = this.entries.get(name);
    if (!entry) return false;
    this.entries.delete(name);
    try {
      this.save();
    } catch (err) {
      this.entries.set(name, entry);
      throw err;
    }
    return true;
  }

  private save(): void {
    fs.mkdirSync(this.paths.metastore, { recursive: true });
    const file: RegistryFile = { version: 1, namespaces: Object.fromEntries(this.entries) };
    const text = JSON.stringify(file, null, 2);
    writeAtomically(this.paths.registry, (fd) => fs.writeSync(fd, text), { durable: true });
  }
}
