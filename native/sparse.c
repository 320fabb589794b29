/*
 * mirrorbox native helpers: the Linux calls Node's fs and net modules do not expose.
 *
 *   punchHole(fd, offset, length)  fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
 *   zeroRange(fd, offset, length)  fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)
 *   seekData(fd, offset)           lseek(SEEK_DATA); -1 when there is no data at or after offset
 *   seekHole(fd, offset)           lseek(SEEK_HOLE)
 *   dupFd(fd)                      dup(fd) with FD_CLOEXEC (to re-wrap an accepted socket)
 *   isCached(fd, offset, length)   cachestat(2): true when every page of the range is in the page
 *                                  cache, false when not, null when the kernel cannot tell (< 6.5)
 *   sendFile(sock, head, file, offset, length)
 *                                  send(head, MSG_MORE) then sendfile(): a read reply straight
 *                                  from the page cache; returns the bytes sent (short when the
 *                                  non-blocking socket is full)
 *
 * Every function is synchronous (these calls touch metadata or the page cache) and throws an
 * Error whose `code` is the errno name (EOPNOTSUPP, EBADF, ...) so the caller can fall back.
 * Offsets and lengths travel as JS numbers (doubles): exact up to 2^53 bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <stdint.h>
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
    case EPIPE: name = "EPIPE"; break;
    case ECONNRESET: name = "ECONNRESET"; break;
    case ENOTCONN: name = "ENOTCONN"; break;
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


/* cachestat(2) (Linux 6.5); glibc has no wrapper, older headers no number. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct mb_cachestat_range {
  uint64_t off;
  uint64_t len;
};
struct mb_cachestat {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

static napi_value is_cached(napi_env env, napi_callback_info info) {
  double a[3];
  if (!read_args(env, info, 3, a)) return NULL;
  napi_value result;
  if (a[2] == 0) {
    napi_get_boolean(env, true, &result);
    return result;
  }
  struct mb_cachestat_range range = {(uint64_t)a[1], (uint64_t)a[2]};
  struct mb_cachestat stat;
  memset(&stat, 0, sizeof stat);
  if (syscall(__NR_cachestat, (int)a[0], &range, &stat, 0) != 0) {
    if (errno == ENOSYS || errno == EOPNOTSUPP || errno == EPERM) {
      napi_get_null(env, &result);
      return result;
    }
    return throw_errno(env, errno, "cachestat");
  }
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t pages = (range.off + range.len + page - 1) / page - range.off / page;
  napi_get_boolean(env, stat.nr_cache >= pages, &result);
  return result;
}

/*
 * sendFile(socketFd, head, fileFd, offset, length) -> bytes sent (head first, then file data)
 *
 * Sends `head` (a Uint8Array, may be empty) with MSG_MORE, then up to `length` bytes of the
 * file from `offset` with sendfile(2): the kernel passes page-cache pages to the socket, no copy
 * through user memory. The socket is non-blocking: when it is full the call returns what it has
 * sent so far (possibly 0) and the caller waits for room. Returns early (short count) at end of
 * file. Throws on any other error.
 */
static napi_value send_file(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc = 5;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
    napi_throw_type_error(env, "EINVAL", "wrong number of arguments");
    return NULL;
  }
  double sock, file, offset, length;
  if (napi_get_value_double(env, argv[0], &sock) != napi_ok || napi_get_value_double(env, argv[2], &file) != napi_ok ||
      napi_get_value_double(env, argv[3], &offset) != napi_ok || napi_get_value_double(env, argv[4], &length) != napi_ok ||
      sock < 0 || file < 0 || offset < 0 || length < 0 || offset > 9007199254740992.0 || length > 2147483647.0) {
    napi_throw_type_error(env, "EINVAL", "arguments must be non-negative numbers");
    return NULL;
  }
  void *head = NULL;
  size_t headBytes = 0;
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t byteOffset;
  if (napi_get_typedarray_info(env, argv[1], &type, &headBytes, &head, &arraybuffer, &byteOffset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "head must be a Uint8Array");
    return NULL;
  }
  size_t sent = 0;
  while (sent < headBytes) {
    ssize_t n = send((int)sock, (char *)head + sent, headBytes - sent, MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) goto done;
      return throw_errno(env, errno, "send");
    }
    sent += (size_t)n;
  }
  off_t position = (off_t)offset;
  size_t remaining = (size_t)length;
  while (remaining > 0) {
    ssize_t n = sendfile((int)sock, (int)file, &position, remaining);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (sent > 0) break; /* report what went out; the next call raises the error */
      return throw_errno(env, errno, "sendfile");
    }
    if (n == 0) break; /* end of file */
    sent += (size_t)n;
    remaining -= (size_t)n;
  }
done:;
  napi_value result;
  napi_create_double(env, (double)sent, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_enumerable, NULL},
    {"zeroRange", NULL, zero_range, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dupFd", NULL, dup_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    {"isCached", NULL, is_cached, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sendFile", NULL, send_file, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
