# Native code, built by `npm install`/`npm ci` (package.json "install"), from source.
# - watchdog (native/watchdog.c): the statement watchdog, one shared library that is both a
#   Node-API addon and a SQLite loadable extension.
# - checksums (native/checksums.c): the replication log's CRC-64 (src/engine/wal/crc64.ts falls back
#   to its JavaScript version when the library cannot be loaded).
# - restore (native/restore.c): restore's snapshot decoder over the zlib Node links and exports to
#   addons, into buffers the caller reuses, with the snapshot's digest of what it decodes: CRC-64
#   (native/crc.h, shared with checksums.c) or SHA-256 with the OpenSSL Node links (found with
#   dlsym; src/backup/restore/native-gunzip.ts falls back to node:zlib's stream when the library
#   cannot be loaded, and to node:crypto's hash when that OpenSSL is not found).
# The watchdog is compiled against the headers of the SQLite that better-sqlite3 embeds, and links
# nothing from it: as an extension it reaches SQLite only through the routines SQLite hands it.
{
  'targets': [
    {
      'target_name': 'watchdog',
      'sources': ['native/watchdog.c'],
      'include_dirs': [
        "<!(node -p \"require('path').join(require('path').dirname(require.resolve('better-sqlite3/package.json')), 'deps', 'sqlite3')\")",
      ],
      'defines': ['NAPI_VERSION=8'],
      'cflags': ['-std=c11', '-D_POSIX_C_SOURCE=200809L', '-Wall', '-Wextra', '-fvisibility=hidden'],
      'libraries': ['-lpthread'],
    },
    {
      'target_name': 'checksums',
      'sources': ['native/checksums.c'],
      'defines': ['NAPI_VERSION=8'],
      'cflags': ['-std=c11', '-O3', '-Wall', '-Wextra', '-fvisibility=hidden'],
    },
    {
      'target_name': 'restore',
      'sources': ['native/restore.c'],
      'defines': ['NAPI_VERSION=8'],
      'cflags': ['-std=c11', '-D_GNU_SOURCE', '-O2', '-Wall', '-Wextra', '-fvisibility=hidden'],
      'libraries': ['-ldl'],
    },
  ],
}
