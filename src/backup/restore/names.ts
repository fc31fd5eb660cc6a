/** How a database name maps to a namespace of a sqld data directory. */

/** The namespace of a database name: after the first `:`, else the name without a leading `ns-`. */
export function namespaceOfDbName(db: string): string {
  const colon = db.indexOf(':');
  if (colon >= 0) return db.slice(colon + 1);
  return db.startsWith('ns-') ? db.slice(3) : db;
}
