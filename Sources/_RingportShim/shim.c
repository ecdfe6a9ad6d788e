// The shim's functions that need GNU extensions (accept4, MSG_CMSG_CLOEXEC, CPU_SET): compiled here with
// _GNU_SOURCE, so the header Swift imports sees the same system headers as Swift's own Glibc module.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "ringport_shim.h"

/* Sends len bytes and, if fd >= 0, the descriptor fd (SCM_RIGHTS) in one message. Returns bytes or -errno. */
long rp_send_with_fd(int sock, const void *buf, size_t len, int fd)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char bytes[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    long r;
    do r = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r >= 0 ? r : -errno;
}

/* Receives one message of at most len bytes, and a descriptor into *fd (-1 if none; close-on-exec).
 * Returns bytes (0 at end of stream) or -errno. A truncated message or control part is -EMSGSIZE.
 * Every descriptor the message carried except the one returned is closed here, whatever the cmsg layout
 * (several per cmsg, several cmsgs): a peer can make no descriptor stay open in this process. */
long rp_recv_with_fd(int sock, void *buf, size_t len, int *fd, int flags)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char bytes[CMSG_SPACE(sizeof(int) * RP_RECV_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                         .msg_controllen = sizeof control.bytes};
    *fd = -1;
    long r;
    do r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
    while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int received;
            memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (received < 0) continue;
            if (*fd < 0) *fd = received;
            else close(received);
        }
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || r == 0) {
        /* A message of zero bytes is end of stream to the caller: it must carry nothing away either. */
        if (*fd >= 0) close(*fd);
        *fd = -1;
        if (r > 0 || (msg.msg_flags & MSG_TRUNC)) return -EMSGSIZE;
    }
    return r;
}

/* Sends len bytes with count descriptors, per_cmsg in each SCM_RIGHTS control message (tests: a flood of
 * descriptors in every layout). Returns bytes or -errno. */
long rp_send_with_fds(int sock, const void *buf, size_t len, const int *fds, unsigned count, unsigned per_cmsg,
                      int flags)
{
    if (count > RP_RECV_MAX_FDS) count = RP_RECV_MAX_FDS;
    if (per_cmsg == 0) per_cmsg = 1;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char bytes[CMSG_SPACE(sizeof(int)) * RP_RECV_MAX_FDS];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (count > 0) {
        size_t space = 0;
        for (unsigned done = 0; done < count; done += per_cmsg) {
            unsigned n = count - done < per_cmsg ? count - done : per_cmsg;
            space += CMSG_SPACE(n * sizeof(int));
        }
        msg.msg_control = control.bytes;
        msg.msg_controllen = space;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        for (unsigned done = 0; done < count && c; done += per_cmsg) {
            unsigned n = count - done < per_cmsg ? count - done : per_cmsg;
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(n * sizeof(int));
            memcpy(CMSG_DATA(c), fds + done, n * sizeof(int));
            c = CMSG_NXTHDR(&msg, c);
        }
    }
    long r;
    do r = sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
    while (r < 0 && errno == EINTR);
    return r >= 0 ? r : -errno;
}

/* The connected peer's process and user (SO_PEERCRED: the kernel's word, set at connect). 0 or errno. */
int rp_peer_credentials(int sock, int32_t *pid, uint32_t *uid)
{
    struct ucred cred;
    socklen_t size = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return errno;
    *pid = cred.pid;
    *uid = cred.uid;
    return 0;
}

/* accept4 with no address, close-on-exec (its address argument is a transparent union Swift cannot pass). */
int rp_accept(int sock) { return accept4(sock, NULL, NULL, SOCK_CLOEXEC); }

/* Pins the calling thread to one CPU; returns 0 or errno. (CPU_SET and sched_setaffinity need _GNU_SOURCE.) */
int rp_pin_to_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}


/* The parent of process `pid` (from /proc/PID/stat, after the command name's last ')'), or -1. */
static pid_t rp_parent_of(pid_t pid)
{
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *file = fopen(path, "re");
    if (file == NULL) return -1;
    size_t n = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[n] = 0;
    char *end = strrchr(text, ')');
    int parent;
    char state;
    if (end == NULL || sscanf(end + 1, " %c %d", &state, &parent) != 2) return -1;
    return parent;
}

int rp_die_with_ancestor(pid_t ancestor)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return errno;
    // Armed first, checked after: a death from now on kills us; one before shows in the chain.
    pid_t pid = getppid();
    for (int depth = 0; depth < 64 && pid > 1; depth++) {
        if (pid == ancestor) return 0;
        pid = rp_parent_of(pid);
    }
    return ESRCH;
}

int rp_exec_arguments(char *const *argv, int first)
{
    execv(argv[first], argv + first);
    return errno;
}

/* Points message i of count at base + i * len (at most 64). */
static unsigned rp_fill_messages(struct mmsghdr *messages, struct iovec *vectors, const void *base, size_t len,
                                 unsigned count)
{
    if (count > 64) count = 64;
    for (unsigned i = 0; i < count; i++) {
        vectors[i].iov_base = (char *)base + i * len;
        vectors[i].iov_len = len;
        memset(&messages[i], 0, sizeof messages[i]);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    return count;
}

/* Sends count messages of len bytes each, message i from base + i * len (sendmmsg). Returns how many
 * were sent, or -errno. */
int rp_sendmmsg_same(int sock, const void *base, size_t len, unsigned count)
{
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    count = rp_fill_messages(messages, vectors, base, len, count);
    int r;
    do r = sendmmsg(sock, messages, count, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r >= 0 ? r : -errno;
}

/* Receives up to count messages of at most len bytes into base + i * len (recvmmsg, MSG_WAITFORONE).
 * Returns how many, or -errno. */
int rp_recvmmsg_same(int sock, void *base, size_t len, unsigned count)
{
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    count = rp_fill_messages(messages, vectors, base, len, count);
    int r;
    do r = recvmmsg(sock, messages, count, MSG_WAITFORONE, NULL);
    while (r < 0 && errno == EINTR);
    return r >= 0 ? r : -errno;
}

/* ---- sealed anonymous segments ---- */
#include <fcntl.h>
#include <sys/mman.h>

int rp_memfd_create_sealable(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    return fd >= 0 ? fd : -errno;
}

int rp_memfd_reserve(int fd, long long size)
{
    int r;
    do r = fallocate(fd, 0, 0, (off_t)size);
    while (r != 0 && errno == EINTR);
    return r == 0 ? 0 : errno;
}

int rp_memfd_add_seals(int fd, int seals)
{
    _Static_assert(RP_SEAL_SHRINK == F_SEAL_SHRINK && RP_SEAL_GROW == F_SEAL_GROW && RP_SEAL_SEAL == F_SEAL_SEAL &&
                       RP_SEALS_REQUIRED == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                   "seal values");
    return fcntl(fd, F_ADD_SEALS, seals) == 0 ? 0 : errno;
}

int rp_memfd_get_seals(int fd)
{
    int r = fcntl(fd, F_GET_SEALS);
    return r >= 0 ? r : -errno;
}

int rp_memfd_punch_hole(int fd, long long offset, long long length)
{
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) == 0 ? 0 : errno;
}
