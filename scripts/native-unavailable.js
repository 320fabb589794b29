#!/usr/bin/env node
// Called when node-gyp cannot build native/sparse.c (no compiler on this machine). mirrorbox still
// works: the file store then writes zeros instead of punching holes and reports every extent as data.
process.stderr.write(
  'mirrorbox: the native sparse-file helper did not build; trim/zero will write zeros and block status will report data only\n',
);
