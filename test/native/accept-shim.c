/*
 * LD_PRELOAD shim around accept4() for the listener tests (the native helper's accept thread).
 *
 * ACCEPT_SHIM_COUNT  file that holds the number of accept4() calls so far (decimal text).
 * ACCEPT_SHIM_FAIL   while this file exists, accept4() fails with EMFILE without taking the
 *                    pending connection, exactly as the kernel does when the process is out of
 *                    descriptors: the listening socket stays readable.
 * ACCEPT_SHIM_CIDS   "17,16,...": each accepted connection's address is reported as an AF_VSOCK
 *                    peer with the next CID of the list (port 50000 + n), so the listener's CID
 *                    check runs on AF_UNIX stand-ins, on the address accept() hands it.
 * CONNECT_SHIM_COUNT file that holds the number of connect() calls so far (the connect side's
 *                    retry loop).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned long calls, connects, accepted;

static void record(const char *variable, unsigned long *counter) {
  const char *path = getenv(variable);
  if (!path) return;
  char text[32];
  int n = snprintf(text, sizeof text, "%-20lu\n", __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST));
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  ssize_t w = pwrite(fd, text, (size_t)n, 0);
  (void)w;
  close(fd);
}

static unsigned next_cid(const char *list, unsigned long index) {
  unsigned long count = 1;
  for (const char *p = list; *p; p++) count += *p == ',';
  const char *p = list;
  for (unsigned long i = index % count; i > 0; i--) p = strchr(p, ',') + 1;
  return (unsigned)strtoul(p, NULL, 10);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
  static int (*real)(int, struct sockaddr *, socklen_t *, int);
  if (!real) real = dlsym(RTLD_NEXT, "accept4");
  record("ACCEPT_SHIM_COUNT", &calls);
  const char *fail = getenv("ACCEPT_SHIM_FAIL");
  if (fail && access(fail, F_OK) == 0) {
    errno = EMFILE;
    return -1;
  }
  socklen_t capacity = len ? *len : 0;
  int s = real(fd, addr, len, flags);
  const char *cids = getenv("ACCEPT_SHIM_CIDS");
  if (s >= 0 && cids && addr && capacity >= sizeof(struct sockaddr_vm)) {
    unsigned long n = __atomic_fetch_add(&accepted, 1, __ATOMIC_SEQ_CST);
    struct sockaddr_vm vm = {.svm_family = AF_VSOCK, .svm_cid = next_cid(cids, n), .svm_port = 50000 + (unsigned)n};
    memcpy(addr, &vm, sizeof vm);
    *len = sizeof vm;
  }
  return s;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (!real) real = dlsym(RTLD_NEXT, "connect");
  record("CONNECT_SHIM_COUNT", &connects);
  return real(fd, addr, len);
}
