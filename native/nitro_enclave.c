/*
 * nitro-enclave-sdk native helper: what Node cannot do by itself.
 *
 *  1. NSM: ioctl() on /dev/nsm with the driver's two-iovec message, off the
 *     JavaScript thread (Node-API async work).
 *  2. vsock: libuv only adopts AF_INET/AF_UNIX sockets, so an AF_VSOCK
 *     connection is relayed through an AF_UNIX socketpair. JavaScript gets the
 *     UNIX end as a normal net.Socket (backpressure, half-close and errors
 *     included); two threads per stream copy bytes, one per direction, with
 *     blocking writes, so a full receiver stops the copy and the window of the
 *     sender fills: backpressure is end to end. Chosen over polling the vsock fd
 *     on libuv's loop because the Duplex semantics then come from libuv's own
 *     net.Socket; measured cost: 669 MB/s through the relay against 722 MB/s on
 *     a direct AF_UNIX socket (npm run bench), plus two threads per stream.
 *  3. AES-256-GCM into an existing buffer (node:crypto always allocates its
 *     output): the TSK envelope without the extra allocation and copy.
 *
 * Every address is data ({family: "vsock"|"unix"|"inet", ...}), so tests run
 * this exact code against AF_UNIX and loopback TCP peers.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CHECK(env, call)                                            \
  do {                                                              \
    if ((call) != napi_ok) {                                        \
      napi_throw_error((env), "ERR_NATIVE_INTERNAL", #call " failed"); \
      return NULL;                                                  \
    }                                                               \
  } while (0)

/* ------------------------------------------------------------------ */
/* Errors: reject/throw with { code: "E...", errno, syscall }          */

static napi_value errno_error(napi_env env, int err, const char *syscall) {
  napi_value error, code_v, msg_v, errno_v, sys_v;
  char message[256];
  const char *name = err == ETIMEDOUT ? "ETIMEDOUT" : err == ECANCELED ? "ECANCELED" : err == ENAMETOOLONG ? "ENAMETOOLONG" : NULL;
  snprintf(message, sizeof message, "%s failed: %s", syscall, strerror(err));
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, NULL, msg_v, &error);
  napi_create_int32(env, err, &errno_v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_set_named_property(env, error, "syscall", sys_v);
  if (name) {
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_v);
    napi_set_named_property(env, error, "code", code_v);
  }
  return error;
}

static int get_int(napi_env env, napi_value obj, const char *key, int64_t *out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return -1;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return -1;
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

/* Copies a string property into buf. Returns 0, -1 (absent, not a string, or holding a NUL byte,
 * which would cut the string short) or -ENAMETOOLONG when its UTF-8 encoding needs more than
 * cap - 1 bytes. The length is measured before copying: napi truncates at a character boundary, so
 * comparing the copied length against the buffer misses a multi-byte character at the end. */
static int get_str(napi_env env, napi_value obj, const char *key, char *buf, size_t cap) {
  napi_value v;
  napi_valuetype t;
  size_t len, copied;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return -1;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return -1;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
  if (len > cap - 1) return -ENAMETOOLONG;
  if (napi_get_value_string_utf8(env, v, buf, cap, &copied) != napi_ok || copied != len) return -1;
  if (memchr(buf, 0, len) != NULL) return -1;
  return 0;
}

/* ------------------------------------------------------------------ */
/* NSM                                                                 */

/* The driver's message (linux/nsm.h): request and response iovecs. The
 * driver writes the response length back into response.iov_len. */
struct nsm_message {
  struct iovec request;
  struct iovec response;
};
#define NSM_IOCTL_MAGIC 0x0A
#define NSM_IOCTL_REQUEST _IOWR(NSM_IOCTL_MAGIC, 0, struct nsm_message)
#define NSM_REQUEST_MAX 0x1000
#define NSM_RESPONSE_MAX 0x3000

static napi_value nsm_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char path[4096];
  size_t len;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "path must be a string");
    return NULL;
  }
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    napi_throw(env, errno_error(env, errno, "open"));
    return NULL;
  }
  CHECK(env, napi_create_int32(env, fd, &result));
  return result;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return NULL;
  close(fd);
  return NULL;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  uint8_t request[NSM_REQUEST_MAX];
  size_t request_len;
  uint8_t response[NSM_RESPONSE_MAX];
  size_t response_len;
  int err;
} nsm_call;

static void nsm_execute(napi_env env, void *data) {
  (void)env;
  nsm_call *c = data;
  struct nsm_message msg = {
      .request = {.iov_base = c->request, .iov_len = c->request_len},
      .response = {.iov_base = c->response, .iov_len = sizeof c->response},
  };
  int rc;
  do {
    rc = ioctl(c->fd, NSM_IOCTL_REQUEST, &msg);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    c->err = errno;
    return;
  }
  /* A length beyond our buffer means the answer did not fit: report it rather than read past the end. */
  if (msg.response.iov_len > sizeof c->response) {
    c->err = ENOBUFS;
    return;
  }
  c->response_len = msg.response.iov_len;
}

static void nsm_complete(napi_env env, napi_status status, void *data) {
  nsm_call *c = data;
  if (status != napi_ok) c->err = ECANCELED;
  if (c->err) {
    napi_reject_deferred(env, c->deferred, errno_error(env, c->err, "ioctl(NSM)"));
  } else {
    napi_value buf;
    void *out;
    napi_create_buffer_copy(env, c->response_len, c->response, &out, &buf);
    napi_resolve_deferred(env, c->deferred, buf);
  }
  napi_delete_async_work(env, c->work);
  free(c);
}

/* nsmRequest(fd, request: Uint8Array) -> Promise<Buffer> */
static napi_value nsm_request(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], promise, name;
  int32_t fd;
  bool is_typed;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed) {
    napi_throw_type_error(env, NULL, "nsmRequest(fd, Uint8Array)");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length, offset;
  void *bytes;
  napi_value ab;
  CHECK(env, napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, &ab, &offset));
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "request must be a Uint8Array");
    return NULL;
  }
  if (length > NSM_REQUEST_MAX) {
    napi_throw(env, errno_error(env, EMSGSIZE, "ioctl(NSM)"));
    return NULL;
  }
  nsm_call *c = calloc(1, sizeof *c);
  if (!c) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  c->fd = fd;
  memcpy(c->request, bytes, length);
  c->request_len = length;
  CHECK(env, napi_create_promise(env, &c->deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, "nitro-enclave-sdk:nsm", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, nsm_execute, nsm_complete, c, &c->work));
  CHECK(env, napi_queue_async_work(env, c->work));
  return promise;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

typedef struct {
  struct sockaddr_storage addr;
  socklen_t len;
  int family;
} address;

/* Parses {family:"vsock",cid,port} | {family:"unix",path} | {family:"inet",host,port}.
 * Returns 0, -1 (invalid) or -ENAMETOOLONG (a unix path over 107 bytes). */
static int parse_address(napi_env env, napi_value spec, address *out) {
  char family[16], text[108];
  int64_t a, b;
  memset(out, 0, sizeof *out);
  if (get_str(env, spec, "family", family, sizeof family) != 0) return -1;
  if (strcmp(family, "vsock") == 0) {
    struct sockaddr_vm *vm = (struct sockaddr_vm *)&out->addr;
    if (get_int(env, spec, "cid", &a) || get_int(env, spec, "port", &b) || a < 0 || a > UINT32_MAX || b < 0 || b > UINT32_MAX) return -1;
    vm->svm_family = AF_VSOCK;
    vm->svm_cid = (unsigned)a;
    vm->svm_port = (unsigned)b;
    out->len = sizeof *vm;
    out->family = AF_VSOCK;
  } else if (strcmp(family, "unix") == 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)&out->addr;
    int rc = get_str(env, spec, "path", text, sizeof un->sun_path);
    if (rc) return rc;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, text, strlen(text) + 1); /* get_str bounded it to sizeof sun_path - 1 bytes */
    out->len = sizeof *un;
    out->family = AF_UNIX;
  } else if (strcmp(family, "inet") == 0) {
    struct sockaddr_in *in = (struct sockaddr_in *)&out->addr;
    if (get_str(env, spec, "host", text, sizeof text) != 0 || get_int(env, spec, "port", &b) || b < 0 || b > 65535) return -1;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)b);
    if (inet_pton(AF_INET, text, &in->sin_addr) != 1) return -1;
    out->len = sizeof *in;
    out->family = AF_INET;
  } else {
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Relay: two threads per stream, one per direction                    */

typedef struct {
  int remote;       /* the vsock (or stand-in) connection */
  int local;        /* our end of the socketpair; JavaScript owns the other */
  int threads_left; /* the last pump to finish closes both fds */
  int refs;         /* two pumps + the JavaScript handle; the last frees */
  int error;        /* first errno seen on the remote side, 0 if none */
  int ended;        /* the whole stream was shut down (relay_end): no half-close may follow */
  pthread_mutex_t lock;
} relay;

static void relay_release(relay *r) {
  pthread_mutex_lock(&r->lock);
  int left = --r->refs;
  pthread_mutex_unlock(&r->lock);
  if (left == 0) {
    pthread_mutex_destroy(&r->lock);
    free(r);
  }
}

/* Called once per pump (or for a pump that could not start). */
static void pump_finished(relay *r) {
  pthread_mutex_lock(&r->lock);
  int last = --r->threads_left == 0;
  pthread_mutex_unlock(&r->lock);
  if (last) {
    close(r->remote);
    close(r->local);
  }
  relay_release(r);
}

typedef struct {
  relay *r;
  int src, dst;
} direction;

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Aborts the remote connection. TCP: a RST now, ahead of anything still queued (SO_LINGER 0 for
 * the final close, and connect(AF_UNSPEC), which disconnects with a RST at once and wakes a pump
 * blocked in send() or poll() on it). vsock and AF_UNIX have no reset on the wire: a virtio-vsock
 * RST on a connected socket only marks it done, and AF_UNIX reports ECONNRESET only for bytes the
 * closer left unread. There an abort shuts both directions at once: the peer reads EOF and its
 * writes fail (EPIPE), where a clean end is a half-close it can still answer. */
static void abort_remote(int fd) {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && (domain == AF_INET || domain == AF_INET6)) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (connect(fd, &unspec, sizeof unspec) == 0) return;
  }
  shutdown(fd, SHUT_RDWR);
}

/* Ends the whole stream, once: the first caller decides between a close (the remote sees end of
 * stream; a FIN on TCP) and an abort. Caller holds r->lock and both fds are still open. */
static void relay_end_locked(relay *r, int abort) {
  if (r->ended) return;
  __atomic_store_n(&r->ended, 1, __ATOMIC_RELEASE);
  if (abort) abort_remote(r->remote);
  else shutdown(r->remote, SHUT_RDWR);
  shutdown(r->local, SHUT_RDWR); /* wakes both pumps; JavaScript reads EOF and asks relayError() */
}

/* JavaScript closed its end of the socketpair: an abort if it left bytes unread (the kernel flags
 * that as ECONNRESET on our end, as a TCP close with unread data sends a RST), else a plain close.
 * Reading the flag clears it, so this runs under r->lock, like the up pump's reads. */
static void local_gone_locked(relay *r) {
  int soerr = 0;
  socklen_t len = sizeof soerr;
  relay_end_locked(r, getsockopt(r->local, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0);
}

/* Copies src -> dst until EOF (passed on as a half-close), an error, or dst going away.
 * Up (JavaScript -> remote) reads under r->lock, so that its EOF or error and the decision it leads
 * to (half-close, abort) are one step against relayAbort and the other pump. */
static void *pump(void *arg) {
  direction d = *(direction *)arg;
  free(arg);
  relay *r = d.r;
  const int up = d.src == r->local;
  uint8_t buf[65536];
  for (;;) {
    /* dst is polled with no events: poll still reports POLLHUP/POLLERR, i.e. the far end is gone. */
    struct pollfd p[2] = {{.fd = d.src, .events = POLLIN}, {.fd = d.dst, .events = 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      pthread_mutex_lock(&r->lock);
      if (!r->error) r->error = errno;
      relay_end_locked(r, 0);
      pthread_mutex_unlock(&r->lock);
      break;
    }
    /* Ended (or reset) by the other pump or by relayAbort: what is still queued is dropped. */
    if (__atomic_load_n(&r->ended, __ATOMIC_ACQUIRE)) break;
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      if (!(p[1].revents & (POLLHUP | POLLERR | POLLNVAL))) continue;
      /* The remote end is gone: end only this direction, and leave the other pump to read what is
       * left and the reason (a reset stays pending on the socket for it to report).
       * Our local end is gone (JavaScript destroyed the socket): end the whole stream. */
      if (!up) {
        pthread_mutex_lock(&r->lock);
        local_gone_locked(r);
        pthread_mutex_unlock(&r->lock);
      }
      break;
    }
    ssize_t n;
    if (up) {
      pthread_mutex_lock(&r->lock);
      n = r->ended ? 0 : recv(d.src, buf, sizeof buf, MSG_DONTWAIT);
      int e = errno;
      if (n == 0 && !r->ended) shutdown(d.dst, SHUT_WR); /* half-close: pass the FIN on, keep the other direction */
      if (n < 0 && e != EINTR && e != EAGAIN) relay_end_locked(r, 1); /* ECONNRESET: JavaScript closed with bytes unread */
      pthread_mutex_unlock(&r->lock);
      if (n < 0 && (e == EINTR || e == EAGAIN)) continue;
      if (n <= 0) break;
    } else {
      n = read(d.src, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n < 0) {
        pthread_mutex_lock(&r->lock);
        if (!r->ended && !r->error) r->error = errno; /* the remote's reset or failure, for relayError() */
        relay_end_locked(r, 0);
        pthread_mutex_unlock(&r->lock);
        break;
      }
      if (n == 0) {
        pthread_mutex_lock(&r->lock);
        if (!r->ended) shutdown(d.dst, SHUT_WR); /* half-close: pass the FIN on, keep the other direction */
        pthread_mutex_unlock(&r->lock);
        break;
      }
    }
    int err = write_all(d.dst, buf, (size_t)n); /* blocks while the receiver is full: backpressure */
    if (err) {
      pthread_mutex_lock(&r->lock);
      if (!up) local_gone_locked(r); /* EPIPE from our socketpair: JavaScript closed it */
      else if (!r->ended) {
        if (!r->error) r->error = err;
        relay_end_locked(r, 0);
      }
      pthread_mutex_unlock(&r->lock);
      break;
    }
  }
  pump_finished(r);
  return NULL;
}

static int start_thread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int rc = pthread_create(&t, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  return rc;
}

/* Takes ownership of `remote` (closed on failure) and starts the relay.
 * Returns the JavaScript end of the socketpair, or -errno. */
static int start_relay(int remote, relay **out) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
    int e = errno;
    close(remote);
    return -e;
  }
  int flags = fcntl(remote, F_GETFL);
  fcntl(remote, F_SETFL, flags & ~O_NONBLOCK);
  relay *r = calloc(1, sizeof *r);
  direction *up = calloc(1, sizeof *up), *down = calloc(1, sizeof *down);
  if (!r || !up || !down) {
    free(r), free(up), free(down);
    close(pair[0]), close(pair[1]), close(remote);
    return -ENOMEM;
  }
  pthread_mutex_init(&r->lock, NULL);
  r->remote = remote;
  r->local = pair[1];
  r->threads_left = 2;
  r->refs = 3;
  *up = (direction){.r = r, .src = pair[1], .dst = remote};
  *down = (direction){.r = r, .src = remote, .dst = pair[1]};
  if (start_thread(pump, up) != 0) {
    free(up), free(down);
    pthread_mutex_destroy(&r->lock);
    free(r);
    close(pair[0]), close(pair[1]), close(remote);
    return -EAGAIN;
  }
  if (start_thread(pump, down) != 0) {
    /* Stand in for the missing pump, end the running one, drop the JavaScript reference. */
    free(down);
    shutdown(pair[1], SHUT_RDWR);
    shutdown(remote, SHUT_RDWR);
    close(pair[0]);
    pump_finished(r);
    relay_release(r);
    return -EAGAIN;
  }
  *out = r;
  return pair[0];
}

static void relay_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  relay_release(data);
}

/* relayAbort(handle): JavaScript reset the stream (socket.resetAndDestroy()). Aborts the remote
 * (abort_remote) unless the stream already ended; whatever is still queued in the relay is dropped:
 * a reset means the sender did not finish, and waiting to flush would tie the reset to a reader
 * that may have stopped. */
static napi_value relay_abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  relay *r;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&r) != napi_ok) return NULL;
  pthread_mutex_lock(&r->lock);
  if (r->threads_left > 0) relay_end_locked(r, 1); /* with no pump left, the fds are closed */
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

/* socketError(fd) -> the socket's pending error (SO_ERROR, which clears it), 0 if none. */
static napi_value socket_error(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "fd must be an integer");
    return NULL;
  }
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
  CHECK(env, napi_create_int32(env, soerr, &result));
  return result;
}

/* relayError(handle) -> errno of the remote side, 0 if none */
static napi_value relay_error(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  relay *r;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&r) != napi_ok) return NULL;
  pthread_mutex_lock(&r->lock);
  int err = r->error;
  pthread_mutex_unlock(&r->lock);
  CHECK(env, napi_create_int32(env, err, &result));
  return result;
}

static napi_value stream_result(napi_env env, int fd, relay *r) {
  napi_value obj, fd_v, handle;
  napi_create_object(env, &obj);
  napi_create_int32(env, fd, &fd_v);
  napi_create_external(env, r, relay_finalize, NULL, &handle);
  napi_set_named_property(env, obj, "fd", fd_v);
  napi_set_named_property(env, obj, "handle", handle);
  return obj;
}

/* ------------------------------------------------------------------ */
/* Connect with timeout and cancellation                               */

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  address addr;
  int timeout_ms;
  int cancel_pipe[2]; /* a byte written to [1] aborts the connect */
  int done;
  int orphaned; /* JavaScript let go before completion: complete() frees */
  int fd;
  relay *r;
  int err;
  const char *syscall;
} connect_call;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void connect_execute(napi_env env, void *data) {
  (void)env;
  connect_call *c = data;
  int64_t deadline = c->timeout_ms > 0 ? now_ms() + c->timeout_ms : -1;
  int s = socket(c->addr.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) {
    c->err = errno, c->syscall = "socket";
    return;
  }
  /* connect() is called again only while an AF_UNIX backlog is full (EAGAIN: nothing is in progress).
   * Once a connect is in progress (EINPROGRESS) we only wait for it: calling connect() again would
   * answer EALREADY, which used to surface instead of the timeout. */
  int in_progress = 0;
  for (;;) {
    if (!in_progress) {
      if (connect(s, (struct sockaddr *)&c->addr.addr, c->addr.len) == 0) break;
      int e = errno;
      if (e == EINPROGRESS || e == EINTR) { /* POSIX: an interrupted connect goes on asynchronously */
        in_progress = 1;
      } else if (!(e == EAGAIN && c->addr.family == AF_UNIX)) {
        c->err = e, c->syscall = "connect";
        close(s);
        return;
      }
    }
    int wait = deadline < 0 ? -1 : (int)(deadline - now_ms());
    if (deadline >= 0 && wait <= 0) {
      c->err = ETIMEDOUT, c->syscall = "connect";
      close(s);
      return;
    }
    /* AF_UNIX reports a full backlog as EAGAIN with nothing to poll for: retry every 10 ms,
     * as a TCP SYN would be retried. */
    if (!in_progress && (wait < 0 || wait > 10)) wait = 10;
    /* Only a connect in progress is polled: an unconnected AF_UNIX socket polls as POLLHUP at once,
     * which would turn the 10 ms retry into a busy loop. */
    struct pollfd p[2] = {{.fd = in_progress ? s : -1, .events = POLLOUT}, {.fd = c->cancel_pipe[0], .events = POLLIN}};
    int rc = poll(p, 2, wait);
    if (rc < 0 && errno != EINTR) {
      c->err = errno, c->syscall = "poll";
      close(s);
      return;
    }
    if (rc > 0 && p[1].revents) {
      c->err = ECANCELED, c->syscall = "connect";
      close(s);
      return;
    }
    if (in_progress && rc > 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
      if (soerr) {
        c->err = soerr, c->syscall = "connect";
        close(s);
        return;
      }
      break;
    }
  }
  int fd = start_relay(s, &c->r);
  if (fd < 0) {
    c->err = -fd, c->syscall = "socketpair";
    return;
  }
  c->fd = fd;
}

static void connect_complete(napi_env env, napi_status status, void *data) {
  connect_call *c = data;
  if (status != napi_ok && !c->err) c->err = ECANCELED, c->syscall = "connect";
  if (c->err) napi_reject_deferred(env, c->deferred, errno_error(env, c->err, c->syscall));
  else napi_resolve_deferred(env, c->deferred, stream_result(env, c->fd, c->r));
  close(c->cancel_pipe[0]);
  close(c->cancel_pipe[1]);
  c->done = 1;
  napi_delete_async_work(env, c->work);
  c->work = NULL;
  if (c->orphaned) free(c);
}

/* Both this and connect_complete run on the JavaScript thread, so the flags need no lock. */
static void connect_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  connect_call *c = data;
  if (c->done) free(c);
  else c->orphaned = 1; /* the worker still uses it */
}

/* cancel(): called from JavaScript (same thread as complete), so `done` needs no lock. */
static napi_value connect_cancel(napi_env env, napi_callback_info info) {
  connect_call *c;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&c));
  if (!c->done) {
    char b = 1;
    ssize_t w = write(c->cancel_pipe[1], &b, 1);
    (void)w;
  }
  return NULL;
}

/* connect(address, timeoutMs) -> { promise, cancel() } */
static napi_value do_connect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], promise, name, obj, cancel, keep;
  int32_t timeout = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  connect_call *c = calloc(1, sizeof *c);
  if (!c) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  int parsed = argc < 1 ? -1 : parse_address(env, argv[0], &c->addr);
  if (parsed != 0) {
    free(c);
    if (parsed == -ENAMETOOLONG) napi_throw(env, errno_error(env, ENAMETOOLONG, "connect"));
    else napi_throw_type_error(env, NULL, "invalid address");
    return NULL;
  }
  if (argc > 1) napi_get_value_int32(env, argv[1], &timeout);
  c->timeout_ms = timeout;
  if (pipe2(c->cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
    int e = errno;
    free(c);
    napi_throw(env, errno_error(env, e, "pipe2"));
    return NULL;
  }
  CHECK(env, napi_create_promise(env, &c->deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, "nitro-enclave-sdk:connect", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, connect_execute, connect_complete, c, &c->work));
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, connect_cancel, c, &cancel));
  /* The external keeps `c` alive as long as JavaScript can still call cancel(). */
  CHECK(env, napi_create_external(env, c, connect_finalize, NULL, &keep));
  CHECK(env, napi_set_named_property(env, obj, "promise", promise));
  CHECK(env, napi_set_named_property(env, obj, "cancel", cancel));
  CHECK(env, napi_set_named_property(env, obj, "_state", keep));
  CHECK(env, napi_queue_async_work(env, c->work));
  return obj;
}

/* ------------------------------------------------------------------ */
/* Listener: a dedicated accept thread delivering relayed streams      */

typedef struct {
  int fd;
  int cancel_pipe[2];
  pthread_t thread;
  napi_threadsafe_function tsfn;
  int family;
  int closed;
  uint32_t *allowed_cids; /* NULL: every peer; else only vsock peers with one of these CIDs */
  size_t allowed_count;
} listener;

typedef struct {
  int fd; /* JavaScript end, or -errno */
  relay *r;
  int refused; /* the peer failed the CID check: its connection was closed unrelayed */
  int is_vsock;
  uint32_t cid, port;
} accepted;

static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  accepted *a = data;
  if (env == NULL) { /* tearing down: nobody will take this stream */
    if (a->fd >= 0 && !a->refused) close(a->fd), relay_release(a->r);
    free(a);
    return;
  }
  napi_value argv[2], undefined;
  napi_get_undefined(env, &undefined);
  if (a->refused) {
    napi_value msg, code;
    napi_create_string_utf8(env, "peer refused by the CID check", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &argv[0]);
    napi_create_string_utf8(env, "EPEERREFUSED", NAPI_AUTO_LENGTH, &code);
    napi_set_named_property(env, argv[0], "code", code);
    napi_get_null(env, &argv[1]);
  } else if (a->fd < 0) {
    argv[0] = errno_error(env, -a->fd, "accept");
    napi_get_null(env, &argv[1]);
  } else {
    napi_get_null(env, &argv[0]);
    argv[1] = stream_result(env, a->fd, a->r);
  }
  if (a->is_vsock) { /* the peer's vsock address, on a stream or on a refusal */
    napi_value cid, port, target = a->refused ? argv[0] : argv[1];
    napi_create_uint32(env, a->cid, &cid);
    napi_create_uint32(env, a->port, &port);
    napi_set_named_property(env, target, "peerCid", cid);
    napi_set_named_property(env, target, "peerPort", port);
  }
  napi_call_function(env, undefined, js_cb, 2, argv, NULL);
  free(a);
}

/* Hands a record to JavaScript; if the listener is closing, drops it (and the stream it holds). */
static void post(listener *l, accepted *a) {
  if (napi_call_threadsafe_function(l->tsfn, a, napi_tsfn_blocking) == napi_ok) return;
  if (a->fd >= 0 && !a->refused) close(a->fd), relay_release(a->r);
  free(a);
}

static int cid_allowed(const listener *l, uint32_t cid) {
  for (size_t i = 0; i < l->allowed_count; i++)
    if (l->allowed_cids[i] == cid) return 1;
  return 0;
}

#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000

static void *accept_loop(void *arg) {
  listener *l = arg;
  int backoff_ms = 0; /* > 0 while accept() keeps failing (EMFILE, ENFILE, ENOBUFS, ...) */
  for (;;) {
    struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN}, {.fd = l->cancel_pipe[0], .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents) break;
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    memset(&peer, 0, sizeof peer);
    int s = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
    if (s < 0) {
      int e = errno;
      if (e == EAGAIN || e == EINTR || e == ECONNABORTED) continue;
      /* The pending connection stays queued, so the listening fd stays readable: retrying at once
       * would spin (and flood JavaScript with errors). Report the first failure of a run, then
       * wait, doubling up to 1 s, for descriptors or memory to be freed; close() still wakes us. */
      if (backoff_ms == 0) {
        accepted *a = calloc(1, sizeof *a);
        if (a) a->fd = -e, post(l, a);
      }
      backoff_ms = backoff_ms == 0 ? ACCEPT_BACKOFF_MIN_MS : backoff_ms * 2;
      if (backoff_ms > ACCEPT_BACKOFF_MAX_MS) backoff_ms = ACCEPT_BACKOFF_MAX_MS;
      struct pollfd c = {.fd = l->cancel_pipe[0], .events = POLLIN};
      if (poll(&c, 1, backoff_ms) > 0) break;
      continue;
    }
    backoff_ms = 0;
    accepted *a = calloc(1, sizeof *a);
    if (!a) {
      close(s);
      continue;
    }
    /* The peer's family, not the listener's: what accept() reports is what is checked. */
    if (peer.ss_family == AF_VSOCK && len >= sizeof(struct sockaddr_vm)) {
      struct sockaddr_vm *vm = (struct sockaddr_vm *)&peer;
      a->is_vsock = 1;
      a->cid = vm->svm_cid;
      a->port = vm->svm_port;
    }
    /* Fail closed: with an allow list, a peer without a vsock CID is refused too. The connection
     * is closed before any relay thread exists or any byte is read from it. */
    if (l->allowed_cids && !(a->is_vsock && cid_allowed(l, a->cid))) {
      close(s);
      a->refused = 1;
      a->fd = -1;
      post(l, a);
      continue;
    }
    a->fd = start_relay(s, &a->r);
    post(l, a);
  }
  return NULL;
}

static void listener_close_now(listener *l) {
  if (l->closed) return;
  l->closed = 1;
  char b = 1;
  ssize_t w = write(l->cancel_pipe[1], &b, 1);
  (void)w;
  pthread_join(l->thread, NULL);
  close(l->fd);
  close(l->cancel_pipe[0]);
  close(l->cancel_pipe[1]);
  napi_release_threadsafe_function(l->tsfn, napi_tsfn_abort);
}

static napi_value listener_close(napi_env env, napi_callback_info info) {
  listener *l;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&l));
  listener_close_now(l);
  return NULL;
}

static void listener_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  listener *l = data;
  listener_close_now(l);
  free(l->allowed_cids);
  free(l);
}

/* Reads allowedCids: undefined/null -> no check (0); an array of uint32 -> *out (malloc'd); else -1. */
static int parse_cids(napi_env env, napi_value v, uint32_t **out, size_t *count) {
  napi_valuetype t;
  bool is_array;
  uint32_t n;
  *out = NULL, *count = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_undefined || t == napi_null) return 0;
  if (napi_is_array(env, v, &is_array) != napi_ok || !is_array || napi_get_array_length(env, v, &n) != napi_ok || n == 0 || n > 4096) return -1;
  uint32_t *cids = malloc(n * sizeof *cids);
  if (!cids) return -1;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    double d;
    if (napi_get_element(env, v, i, &e) != napi_ok || napi_get_value_double(env, e, &d) != napi_ok || !(d >= 0 && d <= UINT32_MAX) || d != (double)(uint32_t)d) {
      free(cids);
      return -1;
    }
    cids[i] = (uint32_t)d;
  }
  *out = cids, *count = n;
  return 0;
}

/* listen(address, backlog, onConnection(err, {fd, handle, peerCid, peerPort}), allowedCids?) -> { close(), port } */
/* A process killed while listening on an AF_UNIX path leaves the socket file behind, and bind()
 * then fails with EADDRINUSE although nobody listens. Remove the file only when it is a socket
 * (never a regular file or anything else) and a connect() to it is refused (nobody listens): a
 * live listener accepts, or reports a full backlog as EAGAIN, and is left alone (a socket bound but
 * not yet listening is refused too, so it counts as stale: one server per path). Abstract-namespace
 * names have no file. Returns 1 when the stale file was removed. */
static int unlink_stale_unix_socket(const struct sockaddr_un *un) {
  if (un->sun_path[0] == '\0') return 0;
  struct stat st;
  if (lstat(un->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return 0;
  int refused = connect(probe, (const struct sockaddr *)un, sizeof *un) < 0 && errno == ECONNREFUSED;
  close(probe);
  return refused && unlink(un->sun_path) == 0;
}

static napi_value do_listen(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], obj, close_fn, keep, name, port_v;
  int32_t backlog = 128;
  address addr;
  uint32_t *cids = NULL;
  size_t cid_count = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int parsed = argc < 3 ? -1 : parse_address(env, argv[0], &addr);
  if (parsed != 0) {
    if (parsed == -ENAMETOOLONG) napi_throw(env, errno_error(env, ENAMETOOLONG, "bind"));
    else napi_throw_type_error(env, NULL, "listen(address, backlog, callback)");
    return NULL;
  }
  if (argc > 3 && parse_cids(env, argv[3], &cids, &cid_count) != 0) {
    napi_throw_type_error(env, NULL, "allowedCids must be a non-empty array of unsigned 32-bit integers");
    return NULL;
  }
  napi_get_value_int32(env, argv[1], &backlog);
  listener *l = calloc(1, sizeof *l);
  if (!l) {
    free(cids);
    napi_throw_error(env, "ENOMEM", "cannot create listener");
    return NULL;
  }
  l->allowed_cids = cids;
  l->allowed_count = cid_count;
  l->family = addr.family;
  /* Everything that can fail without a system call comes first, so a failure there leaves no
   * socket bound and no fd open. */
  if (napi_create_string_utf8(env, "nitro-enclave-sdk:accept", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, NULL, deliver, &l->tsfn) != napi_ok) {
    free(cids), free(l);
    napi_throw_error(env, "ERR_NATIVE_INTERNAL", "napi_create_threadsafe_function failed");
    return NULL;
  }
  const char *failed = NULL;
  int e = 0, s = socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    e = errno, failed = "socket";
  } else {
    int one = 1;
    if (addr.family == AF_INET) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int bound = bind(s, (struct sockaddr *)&addr.addr, addr.len);
    if (bound < 0 && errno == EADDRINUSE && addr.family == AF_UNIX) {
      if (unlink_stale_unix_socket((struct sockaddr_un *)&addr.addr)) bound = bind(s, (struct sockaddr *)&addr.addr, addr.len);
      else errno = EADDRINUSE; /* the probe's own errno (EAGAIN from a full backlog) is not the answer */
    }
    if (bound < 0 || listen(s, backlog) < 0) e = errno, failed = "bind/listen";
    else if (pipe2(l->cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0) e = errno, failed = "pipe2";
  }
  if (failed) {
    if (s >= 0) close(s);
    napi_release_threadsafe_function(l->tsfn, napi_tsfn_abort);
    free(cids), free(l);
    napi_throw(env, errno_error(env, e, failed));
    return NULL;
  }
  uint32_t bound_port = 0;
  struct sockaddr_storage self;
  socklen_t self_len = sizeof self;
  if (getsockname(s, (struct sockaddr *)&self, &self_len) == 0) {
    if (addr.family == AF_INET) bound_port = ntohs(((struct sockaddr_in *)&self)->sin_port);
    if (addr.family == AF_VSOCK) bound_port = ((struct sockaddr_vm *)&self)->svm_port;
  }
  l->fd = s;
  if (pthread_create(&l->thread, NULL, accept_loop, l) != 0) {
    napi_release_threadsafe_function(l->tsfn, napi_tsfn_abort);
    close(s), close(l->cancel_pipe[0]), close(l->cancel_pipe[1]);
    free(cids), free(l);
    napi_throw_error(env, "EAGAIN", "cannot start the accept thread");
    return NULL;
  }
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_create_function(env, "close", NAPI_AUTO_LENGTH, listener_close, l, &close_fn));
  CHECK(env, napi_create_external(env, l, listener_finalize, NULL, &keep));
  CHECK(env, napi_create_uint32(env, bound_port, &port_v));
  CHECK(env, napi_set_named_property(env, obj, "close", close_fn));
  CHECK(env, napi_set_named_property(env, obj, "port", port_v));
  CHECK(env, napi_set_named_property(env, obj, "_state", keep));
  return obj;
}

/* ------------------------------------------------------------------ */
/* AES-256-GCM into a caller's buffer (TSK envelope v2, sealed state, payload codec).
 *
 * Why native: node:crypto's ciphers return a new buffer from every update(), so an envelope
 * (header ‖ ciphertext ‖ tag, one Uint8Array) costs one allocation and one copy of the whole
 * ciphertext more than bare GCM, and each message crosses into C++ six to eight times
 * (createCipheriv, setAAD, update, final, getAuthTag). One call here encrypts straight into the
 * envelope and decrypts into the caller's buffer. Measured: docs/performance-notes.md (codec and
 * envelope rows).
 *
 * The cipher is Node's own OpenSSL, the one node:crypto runs on. Its symbols are looked up at run
 * time (dlsym), not linked: where a Node build does not export them, the helper still loads (NSM,
 * vsock) and gcmAvailable() is false, so the JavaScript side keeps node:crypto. Only the few
 * stable OpenSSL 3 entry points below are used, so they are declared here rather than needing
 * OpenSSL's headers at build time. A context lives for one call and is freed (which cleanses its
 * key schedule) before the call returns: no key material outlives the message.
 */
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;
typedef struct ossl_param_st OSSL_PARAM;
#define GCM_GET_TAG 0x10 /* EVP_CTRL_GCM_GET_TAG */
#define GCM_SET_TAG 0x11 /* EVP_CTRL_GCM_SET_TAG */
#define GCM_KEY 32
#define GCM_IV 12
#define GCM_TAG 16
/* EVP_*Update take an int length: feed at most this much per call. */
#define GCM_CHUNK ((size_t)1 << 30)

typedef int (*evp_init_fn)(EVP_CIPHER_CTX *, const EVP_CIPHER *, const unsigned char *, const unsigned char *, const OSSL_PARAM *);
typedef int (*evp_update_fn)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int);
typedef int (*evp_final_fn)(EVP_CIPHER_CTX *, unsigned char *, int *);
static struct {
  EVP_CIPHER *(*fetch)(OSSL_LIB_CTX *, const char *, const char *);
  EVP_CIPHER_CTX *(*ctx_new)(void);
  void (*ctx_free)(EVP_CIPHER_CTX *);
  int (*ctrl)(EVP_CIPHER_CTX *, int, int, void *);
  evp_init_fn enc_init, dec_init;
  evp_update_fn enc_update, dec_update;
  evp_final_fn enc_final, dec_final;
  EVP_CIPHER *aes_256_gcm; /* fetched once: an implicit fetch per message costs more than 1 KiB of GCM */
} ossl;
static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;

static void ossl_resolve(void) {
#define SYM(field, name) *(void **)&ossl.field = dlsym(RTLD_DEFAULT, name)
  SYM(fetch, "EVP_CIPHER_fetch");
  SYM(ctx_new, "EVP_CIPHER_CTX_new");
  SYM(ctx_free, "EVP_CIPHER_CTX_free");
  SYM(ctrl, "EVP_CIPHER_CTX_ctrl");
  SYM(enc_init, "EVP_EncryptInit_ex2");
  SYM(dec_init, "EVP_DecryptInit_ex2");
  SYM(enc_update, "EVP_EncryptUpdate");
  SYM(dec_update, "EVP_DecryptUpdate");
  SYM(enc_final, "EVP_EncryptFinal_ex");
  SYM(dec_final, "EVP_DecryptFinal_ex");
#undef SYM
  void *all[] = {(void *)ossl.fetch, (void *)ossl.ctx_new, (void *)ossl.ctx_free, (void *)ossl.ctrl, (void *)ossl.enc_init,
                 (void *)ossl.dec_init, (void *)ossl.enc_update, (void *)ossl.dec_update, (void *)ossl.enc_final, (void *)ossl.dec_final};
  /* Every entry point from the same object (two libcrypto copies in the global scope, e.g. one
   * preloaded, must not be mixed): otherwise the helper reports no GCM and node:crypto is used. */
  Dl_info first, each;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (!all[i] || !dladdr(all[i], i ? &each : &first)) return;
    if (i && each.dli_fbase != first.dli_fbase) return;
  }
  ossl.aes_256_gcm = ossl.fetch(NULL, "AES-256-GCM", NULL);
}

static int gcm_ready(void) {
  pthread_once(&ossl_once, ossl_resolve);
  return ossl.aes_256_gcm != NULL;
}

static napi_value gcm_available(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(env, napi_get_boolean(env, gcm_ready(), &out));
  return out;
}

typedef struct {
  unsigned char *data;
  size_t length;
} span;

/* A Uint8Array argument, or a TypeError naming it. */
static int get_u8(napi_env env, napi_value value, const char *what, span *out) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *data = NULL;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &type, &out->length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, what);
    return 0;
  }
  out->data = data;
  return 1;
}

/*
 * The elements of an array of at most `max` items, into `out`; returns the count, or -1 after
 * throwing. Reading an element can run JavaScript (a getter), which could detach or shrink a buffer
 * already looked at: so every argument's elements are collected first, and only then are the
 * buffers' pointers taken (get_u8), with no JavaScript in between.
 */
static int get_list(napi_env env, napi_value value, const char *what, napi_value *out, uint32_t max) {
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, value, &is_array) != napi_ok || !is_array || napi_get_array_length(env, value, &n) != napi_ok || n > max) {
    napi_throw_type_error(env, NULL, what);
    return -1;
  }
  for (uint32_t i = 0; i < n; i++)
    if (napi_get_element(env, value, i, &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, what);
      return -1;
    }
  return (int)n;
}

static int get_u8_each(napi_env env, const napi_value *values, int n, const char *what, span *out) {
  for (int i = 0; i < n; i++)
    if (!get_u8(env, values[i], what, &out[i])) return 0;
  return 1;
}

static int overlaps(const span *a, const unsigned char *b, size_t b_length) {
  if (!a->length || !b_length) return 0;
  uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b; /* unrelated objects: compare addresses, not pointers */
  return a0 < b0 + b_length && b0 < a0 + a->length;
}

static int gcm_feed(evp_update_fn update, EVP_CIPHER_CTX *ctx, unsigned char *out, const span *in) {
  for (size_t done = 0; done < in->length;) {
    size_t n = in->length - done < GCM_CHUNK ? in->length - done : GCM_CHUNK;
    int written = 0;
    if (!update(ctx, out ? out + done : NULL, &written, in->data + done, (int)n) || (size_t)written != n) return 0;
    done += n;
  }
  return 1;
}

#define GCM_MAX_PARTS 16

/*
 * gcmSeal(key, iv, aad[], parts[], out, at): AES-256-GCM of the concatenation of `parts` (never
 * made), authenticating the concatenation of `aad`, written to out[at ..] as ciphertext ‖ tag.
 * The written range must not overlap any input.
 */
static napi_value gcm_seal(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_value aad_v[GCM_MAX_PARTS], parts_v[GCM_MAX_PARTS];
  span key, iv, out, aad[GCM_MAX_PARTS], parts[GCM_MAX_PARTS];
  double at_d = -1;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6) {
    napi_throw_type_error(env, NULL, "gcmSeal takes 6 arguments");
    return NULL;
  }
  /* Everything that can run JavaScript first (see get_list), then the pointers. */
  int naad = get_list(env, argv[2], "aad must be an array of at most 16 Uint8Arrays", aad_v, GCM_MAX_PARTS);
  if (naad < 0) return NULL;
  int nparts = get_list(env, argv[3], "parts must be an array of at most 16 Uint8Arrays", parts_v, GCM_MAX_PARTS);
  if (nparts < 0) return NULL;
  /* napi_get_value_double takes numbers only (no valueOf): no JavaScript runs. 2^53: exact in a double. */
  if (napi_get_value_double(env, argv[5], &at_d) != napi_ok || !(at_d >= 0 && at_d <= 9007199254740991.0) || at_d != (double)(uint64_t)at_d) {
    napi_throw_type_error(env, NULL, "at must be a non-negative integer");
    return NULL;
  }
  if (!get_u8(env, argv[0], "key must be a Uint8Array", &key) || !get_u8(env, argv[1], "iv must be a Uint8Array", &iv) ||
      !get_u8_each(env, aad_v, naad, "aad must be an array of at most 16 Uint8Arrays", aad) ||
      !get_u8_each(env, parts_v, nparts, "parts must be an array of at most 16 Uint8Arrays", parts) ||
      !get_u8(env, argv[4], "out must be a Uint8Array", &out))
    return NULL;
  if (key.length != GCM_KEY || iv.length != GCM_IV) {
    napi_throw_range_error(env, NULL, "key must be 32 bytes and iv 12");
    return NULL;
  }
  size_t at = (size_t)at_d, total = 0;
  for (int i = 0; i < nparts; i++) total += parts[i].length;
  if (at > out.length || out.length - at < total || out.length - at - total < GCM_TAG) {
    napi_throw_range_error(env, NULL, "out is too small for the ciphertext and tag");
    return NULL;
  }
  unsigned char *dst = out.data + at;
  for (int i = 0; i < nparts; i++)
    if (overlaps(&parts[i], dst, total + GCM_TAG)) {
      napi_throw_range_error(env, NULL, "out overlaps a plaintext part");
      return NULL;
    }
  for (int i = 0; i < naad; i++)
    if (overlaps(&aad[i], dst, total + GCM_TAG)) {
      napi_throw_range_error(env, NULL, "out overlaps the aad");
      return NULL;
    }
  if (!gcm_ready()) {
    napi_throw_error(env, "ERR_NATIVE_INTERNAL", "OpenSSL's AES-256-GCM is not available to the native helper");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = ossl.ctx_new();
  int ok = ctx && ossl.enc_init(ctx, ossl.aes_256_gcm, key.data, iv.data, NULL);
  for (int i = 0; ok && i < naad; i++) ok = gcm_feed(ossl.enc_update, ctx, NULL, &aad[i]);
  size_t done = 0;
  for (int i = 0; ok && i < nparts; i++) {
    ok = gcm_feed(ossl.enc_update, ctx, dst + done, &parts[i]);
    done += parts[i].length;
  }
  int tail = 0;
  ok = ok && ossl.enc_final(ctx, dst + done, &tail) && tail == 0 && ossl.ctrl(ctx, GCM_GET_TAG, GCM_TAG, dst + done);
  if (ctx) ossl.ctx_free(ctx);
  if (!ok) {
    memset(dst, 0, total + GCM_TAG);
    napi_throw_error(env, "ERR_NATIVE_INTERNAL", "AES-256-GCM encryption failed in OpenSSL");
    return NULL;
  }
  return NULL;
}

/*
 * gcmOpen(key, iv, aad[], ciphertext, tag, out): decrypts `ciphertext` into `out` (the same length)
 * and checks the tag; true when it authenticates. When it does not, `out` is zeroed (GCM writes
 * plaintext before the tag is known) and the result is false. `out` must not overlap any input.
 */
static napi_value gcm_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], result;
  napi_value aad_v[GCM_MAX_PARTS];
  span key, iv, ct, tag, out, aad[GCM_MAX_PARTS];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6) {
    napi_throw_type_error(env, NULL, "gcmOpen takes 6 arguments");
    return NULL;
  }
  /* Everything that can run JavaScript first (see get_list), then the pointers. */
  int naad = get_list(env, argv[2], "aad must be an array of at most 16 Uint8Arrays", aad_v, GCM_MAX_PARTS);
  if (naad < 0) return NULL;
  if (!get_u8(env, argv[0], "key must be a Uint8Array", &key) || !get_u8(env, argv[1], "iv must be a Uint8Array", &iv) ||
      !get_u8_each(env, aad_v, naad, "aad must be an array of at most 16 Uint8Arrays", aad) ||
      !get_u8(env, argv[3], "ciphertext must be a Uint8Array", &ct) || !get_u8(env, argv[4], "tag must be a Uint8Array", &tag) ||
      !get_u8(env, argv[5], "out must be a Uint8Array", &out))
    return NULL;
  if (key.length != GCM_KEY || iv.length != GCM_IV || tag.length != GCM_TAG) {
    napi_throw_range_error(env, NULL, "key must be 32 bytes, iv 12 and tag 16");
    return NULL;
  }
  if (out.length != ct.length) {
    napi_throw_range_error(env, NULL, "out must be as long as the ciphertext");
    return NULL;
  }
  int bad = overlaps(&ct, out.data, out.length) || overlaps(&tag, out.data, out.length);
  for (int i = 0; i < naad; i++) bad = bad || overlaps(&aad[i], out.data, out.length);
  if (bad) {
    napi_throw_range_error(env, NULL, "out overlaps an input");
    return NULL;
  }
  if (!gcm_ready()) {
    napi_throw_error(env, "ERR_NATIVE_INTERNAL", "OpenSSL's AES-256-GCM is not available to the native helper");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = ossl.ctx_new();
  int ok = ctx && ossl.dec_init(ctx, ossl.aes_256_gcm, key.data, iv.data, NULL);
  for (int i = 0; ok && i < naad; i++) ok = gcm_feed(ossl.dec_update, ctx, NULL, &aad[i]);
  ok = ok && gcm_feed(ossl.dec_update, ctx, out.data, &ct) && ossl.ctrl(ctx, GCM_SET_TAG, GCM_TAG, tag.data);
  int tail = 0;
  unsigned char none[GCM_TAG]; /* GCM's final writes nothing */
  /* EVP_DecryptFinal_ex compares the tag in constant time; 0 is "does not authenticate". */
  int authentic = ok && ossl.dec_final(ctx, none, &tail) > 0 && tail == 0;
  if (ctx) ossl.ctx_free(ctx);
  if (!authentic && out.length) memset(out.data, 0, out.length);
  if (!ok) {
    napi_throw_error(env, "ERR_NATIVE_INTERNAL", "AES-256-GCM decryption failed in OpenSSL");
    return NULL;
  }
  CHECK(env, napi_get_boolean(env, authentic, &result));
  return result;
}

/* ------------------------------------------------------------------ */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"nsmOpen", NULL, nsm_open, NULL, NULL, NULL, napi_default, NULL},
      {"nsmRequest", NULL, nsm_request, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, do_connect, NULL, NULL, NULL, napi_default, NULL},
      {"listen", NULL, do_listen, NULL, NULL, NULL, napi_default, NULL},
      {"relayError", NULL, relay_error, NULL, NULL, NULL, napi_default, NULL},
      {"relayAbort", NULL, relay_abort, NULL, NULL, NULL, napi_default, NULL},
      {"socketError", NULL, socket_error, NULL, NULL, NULL, napi_default, NULL},
      {"gcmAvailable", NULL, gcm_available, NULL, NULL, NULL, napi_default, NULL},
      {"gcmSeal", NULL, gcm_seal, NULL, NULL, NULL, napi_default, NULL},
      {"gcmOpen", NULL, gcm_open, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
