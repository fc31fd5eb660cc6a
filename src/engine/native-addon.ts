/**
 * The Node-API libraries binding.gyp builds at install (native/): where node-gyp puts them, and
 * loading one. Each user keeps a JavaScript fallback for when a library is missing or older.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root, from any module under src/ or dist/ (`moduleUrl`: its `import.meta.url`). */
function packageRoot(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  while (!['src', 'dist'].includes(path.basename(dir)) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.dirname(dir);
}

/** `build/Release/<target>.node` of the package `moduleUrl` belongs to. */
export function nativeLibrary(target: string, moduleUrl: string): string {
  return path.join(packageRoot(moduleUrl), 'build', 'Release', `${target}.node`);
}

/** Loads the library at `file`; throws when it is missing, does not load, or is not what `isAddon` expects. */
export function loadNativeAddon<T>(file: string, isAddon: (exports: Partial<T>) => boolean): T {
  const module = { exports: {} as Partial<T> };
  process.dlopen(module, file);
  if (!isAddon(module.exports)) throw new Error(`${path.basename(file)} is not the library expected`);
  return module.exports as T;
}

/** `loadNativeAddon`, or null when it cannot be loaded (the caller's JavaScript version runs then). */
export function loadOptionalAddon<T>(file: string, isAddon: (exports: Partial<T>) => boolean): T | null {
  try {
    return loadNativeAddon(file, isAddon);
  } catch {
    return null;
  }
}
