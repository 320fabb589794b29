/*
 * mirrorbox sparse-file helpers: the three Linux calls Node's fs module does not expose.
 *
 *   punchHole(fd, offset, length)  fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
 *   zeroRange(fd, offset, length)  fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)
 *   seekData(fd, offset)           lseek(SEEK_DATA); -1 when there is no data at or after offset
 *   seekHole(fd, offset)           lseek(SEEK_HOLE)
 *   dupFd(fd)                      dup(fd) with FD_CLOEXEC (to re-wrap an accepted socket)
 *
 * Every function is synchronous (these calls touch metadata only) and throws an Error whose
 * `code` is the errno name (EOPNOTSUPP, EBADF, ...) so the caller can fall back.
 * Offsets and lengths travel as JS numbers (doubles): exact up to 2^53 bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  const char *name = "EIO";
  switch (err) {
    case EOPNOTSUPP: name = "EOPNOTSUPP"; break;
    case EBADF: name = "EBADF"; break;
    case EINVAL: name = "EINVAL"; break;
    case ENOSPC: name = "ENOSPC"; break;
    case EFBIG: name = "EFBIG"; break;
    case ENODEV: name = "ENODEV"; break;
    case ESPIPE: name = "ESPIPE"; break;
    case EPERM: name = "EPERM"; break;
    case ENOSYS: name = "ENOSYS"; break;
    case EINTR: name = "EINTR"; break;
    default: break;
  }
  napi_throw_error(env, name, message);
  return NULL;
}

static int read_args(napi_env env, napi_callback_info info, size_t want, double *out) {
  napi_value argv[3];
  size_t argc = 3;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "EINVAL", "wrong number of arguments");
    return 0;
  }
  for (size_t i = 0; i < want; i++) {
    if (napi_get_value_double(env, argv[i], &out[i]) != napi_ok || out[i] < 0 || out[i] > 9007199254740992.0) {
      napi_throw_type_error(env, "EINVAL", "arguments must be non-negative numbers");
      return 0;
    }
  }
  return 1;
}

static napi_value do_fallocate(napi_env env, napi_callback_info info, int mode, const char *syscall) {
  double a[3];
  if (!read_args(env, info, 3, a)) return NULL;
  if (a[2] == 0) return NULL;
  int rc;
  do {
    rc = fallocate((int)a[0], mode | FALLOC_FL_KEEP_SIZE, (off_t)a[1], (off_t)a[2]);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return throw_errno(env, errno, syscall);
  return NULL;
}

static napi_value punch_hole(napi_env env, napi_callback_info info) {
  return do_fallocate(env, info, FALLOC_FL_PUNCH_HOLE, "fallocate(PUNCH_HOLE)");
}

static napi_value zero_range(napi_env env, napi_callback_info info) {
  return do_fallocate(env, info, FALLOC_FL_ZERO_RANGE, "fallocate(ZERO_RANGE)");
}

static napi_value do_seek(napi_env env, napi_callback_info info, int whence, const char *syscall) {
  double a[2];
  if (!read_args(env, info, 2, a)) return NULL;
  off_t pos = lseek((int)a[0], (off_t)a[1], whence);
  napi_value result;
  if (pos < 0) {
    if (errno == ENXIO) {
      napi_create_double(env, -1, &result);
      return result;
    }
    return throw_errno(env, errno, syscall);
  }
  napi_create_double(env, (double)pos, &result);
  return result;
}

static napi_value seek_data(napi_env env, napi_callback_info info) {
  return do_seek(env, info, SEEK_DATA, "lseek(SEEK_DATA)");
}

static napi_value seek_hole(napi_env env, napi_callback_info info) {
  return do_seek(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)");
}

static napi_value dup_fd(napi_env env, napi_callback_info info) {
  double a[1];
  if (!read_args(env, info, 1, a)) return NULL;
  int fd = fcntl((int)a[0], F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return throw_errno(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_enumerable, NULL},
    {"zeroRange", NULL, zero_range, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dupFd", NULL, dup_fd, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
