/*
 * LD_PRELOAD shim that stands in for the Nitro Secure Module driver in tests.
 *
 * open(NSM_SHIM_DEVICE, ...) (default "/dev/nsm") returns a UNIX socket
 * connected to NSM_SHIM_SOCKET, where the test answers requests with the
 * simulated NSM. ioctl() on that fd checks the request number and the
 * two-iovec message exactly as the kernel driver would, forwards the request
 * bytes, and writes the answer (or an errno) back the way the driver does:
 * response bytes into response.iov_base, their length into response.iov_len.
 *
 * Wire format to the test: request  = u32 length (LE) + bytes
 *                          response = i32 errno + u32 reported length + u32 body length + body
 * (the reported length is what the "driver" writes to response.iov_len; a
 * test sets it larger than the body to play a driver whose answer did not fit)
 *
 * close() on the fake fd makes it an ordinary fd number again, as the kernel would. While the
 * file NSM_SHIM_DELAY_FILE exists, an NSM ioctl() creates NSM_SHIM_DELAY_FILE.entered and then
 * waits, before it looks the fd up, until the test removes NSM_SHIM_DELAY_FILE (a call that has
 * started but not reached the driver yet, held there for as long as the test needs: a fixed sleep
 * would race the test on a loaded machine). NSM_SHIM_LOG, if set, gets one line per NSM ioctl and
 * per close of the fake fd: "ioctl nsm FD", "ioctl OTHER FD" (the NSM request landed on a file that
 * is not the device) and "close nsm FD".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

struct nsm_message {
  struct iovec request;
  struct iovec response;
};
#define NSM_IOCTL_REQUEST _IOWR(0x0A, 0, struct nsm_message)

static int fake_fds[64];
static int fake_count;
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_line(const char *what, int fd) {
  const char *path = getenv("NSM_SHIM_LOG");
  if (!path) return;
  static int (*real_open)(const char *, int, ...);
  if (!real_open) real_open = dlsym(RTLD_NEXT, "open");
  int f = real_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (f < 0) return;
  char line[64];
  int n = snprintf(line, sizeof line, "%s %d\n", what, fd);
  ssize_t w = write(f, line, (size_t)n);
  (void)w;
  static int (*real_close)(int);
  if (!real_close) real_close = dlsym(RTLD_NEXT, "close");
  real_close(f);
}

/** Creates (or truncates) `path`, with the real open() and close(). */
static void touch(const char *path) {
  static int (*real_open)(const char *, int, ...);
  if (!real_open) real_open = dlsym(RTLD_NEXT, "open");
  static int (*real_close)(int);
  if (!real_close) real_close = dlsym(RTLD_NEXT, "close");
  int f = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (f >= 0) real_close(f);
}

static const char *device(void) {
  const char *d = getenv("NSM_SHIM_DEVICE");
  return d ? d : "/dev/nsm";
}

static int is_fake(int fd) {
  int found = 0;
  pthread_mutex_lock(&fake_lock);
  for (int i = 0; i < fake_count; i++)
    if (fake_fds[i] == fd) found = 1;
  pthread_mutex_unlock(&fake_lock);
  return found;
}

static int forget_fake(int fd) {
  int found = 0;
  pthread_mutex_lock(&fake_lock);
  for (int i = 0; i < fake_count; i++)
    if (fake_fds[i] == fd) {
      fake_fds[i] = fake_fds[--fake_count];
      found = 1;
      break;
    }
  pthread_mutex_unlock(&fake_lock);
  return found;
}

int close(int fd) {
  static int (*real)(int);
  if (!real) real = dlsym(RTLD_NEXT, "close");
  if (forget_fake(fd)) log_line("close nsm", fd);
  return real(fd);
}

static int open_fake(void) {
  const char *path = getenv("NSM_SHIM_SOCKET");
  if (!path) {
    errno = ENOENT;
    return -1;
  }
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
    errno = ENODEV;
    return -1;
  }
  pthread_mutex_lock(&fake_lock);
  if (fake_count < 64) fake_fds[fake_count++] = s;
  pthread_mutex_unlock(&fake_lock);
  return s;
}

static int intercept(const char *path) { return path && strcmp(path, device()) == 0; }

int open(const char *path, int flags, ...) {
  static int (*real)(const char *, int, ...);
  if (intercept(path)) return open_fake();
  if (!real) real = dlsym(RTLD_NEXT, "open");
  va_list ap;
  va_start(ap, flags);
  int mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, int) : 0;
  va_end(ap);
  return real(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
  static int (*real)(const char *, int, ...);
  if (intercept(path)) return open_fake();
  if (!real) real = dlsym(RTLD_NEXT, "open64");
  va_list ap;
  va_start(ap, flags);
  int mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, int) : 0;
  va_end(ap);
  return real(path, flags, mode);
}

static int full(int fd, void *buf, size_t n, int writing) {
  uint8_t *p = buf;
  while (n) {
    ssize_t r = writing ? write(fd, p, n) : read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

int ioctl(int fd, unsigned long request, ...) {
  static int (*real)(int, unsigned long, ...);
  va_list ap;
  va_start(ap, request);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  const char *delay = getenv("NSM_SHIM_DELAY_FILE");
  if (request == NSM_IOCTL_REQUEST && delay && access(delay, F_OK) == 0) {
    char entered[4096];
    snprintf(entered, sizeof entered, "%s.entered", delay);
    touch(entered);
    // Bounded by the test: runShimmedChild kills a child that hangs here.
    while (access(delay, F_OK) == 0) usleep(1000);
  }
  if (!is_fake(fd)) {
    if (request == NSM_IOCTL_REQUEST) log_line("ioctl OTHER", fd);
    if (!real) real = dlsym(RTLD_NEXT, "ioctl");
    return real(fd, request, arg);
  }
  log_line("ioctl nsm", fd);
  if (request != NSM_IOCTL_REQUEST) {
    errno = ENOTTY;
    return -1;
  }
  struct nsm_message *msg = arg;
  uint32_t len = (uint32_t)msg->request.iov_len;
  int32_t err;
  uint32_t reported, rlen;
  if (full(fd, &len, 4, 1) || full(fd, msg->request.iov_base, len, 1) || full(fd, &err, 4, 0) || full(fd, &reported, 4, 0) || full(fd, &rlen, 4, 0)) {
    errno = EIO;
    return -1;
  }
  uint8_t *body = malloc(rlen ? rlen : 1);
  if (!body || full(fd, body, rlen, 0)) {
    free(body);
    errno = EIO;
    return -1;
  }
  if (err) {
    free(body);
    errno = err;
    return -1;
  }
  size_t copy = rlen < msg->response.iov_len ? rlen : msg->response.iov_len;
  memcpy(msg->response.iov_base, body, copy);
  msg->response.iov_len = reported; /* as the driver does: the answer's full length */
  free(body);
  return 0;
}
