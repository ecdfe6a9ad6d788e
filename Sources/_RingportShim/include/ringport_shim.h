/* ringport_shim.h: the few things Swift cannot call (futex, prctl) and the shared-memory
 * layout as C structs, so C clients and the Swift side agree byte for byte.
 * Functions are prefixed rp_ and return 0, a count, or an errno; static inline here, except the few that
 * need GNU extensions, which shim.c compiles (defining _GNU_SOURCE here would split Glibc's module). */
#ifndef RINGPORT_SHIM_H
#define RINGPORT_SHIM_H


#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- futex on a shared word (no FUTEX_PRIVATE_FLAG: the word lives in a MAP_SHARED segment) ---- */

/* Sleeps while *word == expected, at most timeout_ns (negative: no limit).
 * Returns 0 when woken, or EAGAIN (word differed), EINTR, ETIMEDOUT. */
static inline int rp_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0);
    return r == 0 ? 0 : errno;
}

/* Wakes up to count sleepers on word. Returns the number woken, or -errno. */
static inline int rp_futex_wake(uint32_t *word, int count)
{
    long r = syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
    return r >= 0 ? (int)r : -errno;
}

/* futex_waitv (Linux 5.16+): sleeps until a wake on any of count words (each compared with its
 * expected value first), at most timeout_ns (negative: no limit; the clock is CLOCK_MONOTONIC, absolute).
 * Entries are shared (no FUTEX2_PRIVATE). Returns the index woken, or -errno. */
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
struct rp_futex_waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};
static inline int rp_futex_waitv(uint32_t *const *words, const uint32_t *expected, unsigned count, int64_t timeout_ns)
{
    struct rp_futex_waitv entries[128];
    if (count == 0 || count > 128) return -EINVAL;
    for (unsigned i = 0; i < count; i++) {
        entries[i].val = expected[i];
        entries[i].uaddr = (uint64_t)(uintptr_t)words[i];
        entries[i].flags = 2; /* FUTEX2_SIZE_U32 */
        entries[i].reserved = 0;
    }
    struct timespec deadline, *dp = NULL;
    if (timeout_ns >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        int64_t ns = deadline.tv_nsec + timeout_ns % 1000000000;
        deadline.tv_sec += (time_t)(timeout_ns / 1000000000 + ns / 1000000000);
        deadline.tv_nsec = (long)(ns % 1000000000);
        dp = &deadline;
    }
    long r = syscall(SYS_futex_waitv, entries, count, 0, dp, CLOCK_MONOTONIC);
    return r >= 0 ? (int)r : -errno;
}

/* ---- file descriptors over a Unix socket (CMSG_* are macros Swift cannot import) ---- */

/* Sends len bytes and, if fd >= 0, the descriptor fd (SCM_RIGHTS) in one message. Returns bytes or -errno. */
long rp_send_with_fd(int sock, const void *buf, size_t len, int fd);

/* Receives one message of at most len bytes, and a descriptor into *fd (-1 if none; close-on-exec).
 * Returns bytes (0 at end of stream) or -errno. A truncated message or control part is -EMSGSIZE.
 * Every other descriptor the message carried is closed. */
long rp_recv_with_fd(int sock, void *buf, size_t len, int *fd, int flags);

/* Most descriptors one receive takes in (and one rp_send_with_fds sends); the kernel drops any beyond. */
#define RP_RECV_MAX_FDS 64

/* Sends len bytes with count descriptors, per_cmsg of them in each SCM_RIGHTS control message. */
long rp_send_with_fds(int sock, const void *buf, size_t len, const int *fds, unsigned count, unsigned per_cmsg,
                      int flags);

/* The connected peer's pid and uid (SO_PEERCRED); 0 or errno. */
int rp_peer_credentials(int sock, int32_t *pid, uint32_t *uid);

/* sendmmsg / recvmmsg of count equal-sized messages laid end to end (at most 64); count or -errno. */
int rp_sendmmsg_same(int sock, const void *base, size_t len, unsigned count);
int rp_recvmmsg_same(int sock, void *base, size_t len, unsigned count);

/* accept4 with no address, close-on-exec (its address argument is a transparent union Swift cannot pass). */
int rp_accept(int sock);

/* ---- process control ---- */

/* The calling process gets SIGKILL when its parent dies; returns 0 or errno.
 * Also returns ESRCH when the parent is already gone (we were reparented before the call). */
static inline int rp_die_with_parent(pid_t expected_parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return errno;
    return getppid() == expected_parent ? 0 : ESRCH;
}

/* The calling process gets SIGKILL when its parent dies, and only if `ancestor` is still among its
 * ancestors once that is set (0, else ESRCH: a process between them, or the ancestor, died before, and we
 * were reparented). For chains of exec'ing or forking wrappers, each armed the same way. */
int rp_die_with_ancestor(pid_t ancestor);

/* execv(argv[first], argv + first); returns errno (only if the exec failed). */
int rp_exec_arguments(char *const *argv, int first);

/* Pins the calling thread to one CPU; returns 0 or errno. */
int rp_pin_to_cpu(int cpu);

/* PAUSE in a spin loop: lets the sibling hyperthread run and slows our polling of a contended line. */
static inline void rp_cpu_relax(void) { __builtin_ia32_pause(); }

/* ---- shared layout (offsets are the contract; Swift tests check them with MemoryLayout) ---- */

#define RP_SEGMENT_MAGIC 0x54524f50474e4952ull /* "RINGPORT" little-endian */
#define RP_LAYOUT_VERSION 1u
#define RP_SEGMENT_HEADER_SIZE 4096u
#define RP_MAX_REGIONS 32u
#define RP_CACHE_BLOCK 128u /* one writer per 128-byte block: adjacent-line prefetch pairs 64-byte lines */

typedef struct rp_region {
    uint32_t kind;  /* RegionKind */
    uint16_t queue; /* queue number the region belongs to */
    uint16_t flags;
    uint32_t reserved;
    uint32_t reserved2;
    uint64_t offset; /* from the start of the segment; RP_CACHE_BLOCK aligned */
    uint64_t length;
} rp_region;
_Static_assert(sizeof(rp_region) == 32, "rp_region size");

typedef struct rp_segment_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t total_size;
    uint64_t segment_id;
    uint32_t region_count;
    uint32_t flags;
    uint8_t reserved[88];
    rp_region regions[RP_MAX_REGIONS];
} rp_segment_header;
_Static_assert(offsetof(rp_segment_header, total_size) == 16, "total_size");
_Static_assert(offsetof(rp_segment_header, segment_id) == 24, "segment_id");
_Static_assert(offsetof(rp_segment_header, region_count) == 32, "region_count");
_Static_assert(offsetof(rp_segment_header, regions) == 128, "regions");
_Static_assert(sizeof(rp_segment_header) == 128 + 32 * RP_MAX_REGIONS, "header size");
_Static_assert(sizeof(rp_segment_header) <= RP_SEGMENT_HEADER_SIZE, "header fits");

/* NET_RING, split across 128-byte blocks so the OS-written and driver-written indices never share
 * a line (NetAdapterCx keeps them on one line: its callbacks are serialized, ours run in two processes). */
typedef struct rp_net_ring {
    /* block 0: read-only after creation */
    uint16_t os_reserved1; /* ring flags: RP_RING_* */
    uint16_t element_stride;
    uint32_t number_of_elements;
    uint32_t element_index_mask;
    uint32_t reserved0;
    uint8_t pad0[RP_CACHE_BLOCK - 16];
    /* block 1: written by the OS side only */
    uint32_t end_index;
    uint32_t os_reserved0;
    uint8_t pad1[RP_CACHE_BLOCK - 8];
    /* block 2: written by the driver side only */
    uint32_t begin_index;
    uint32_t next_index;
    uint64_t scratch;
    uint8_t pad2[RP_CACHE_BLOCK - 16];
    /* elements follow: number_of_elements * element_stride bytes */
} rp_net_ring;
_Static_assert(offsetof(rp_net_ring, element_stride) == 2, "stride");
_Static_assert(offsetof(rp_net_ring, number_of_elements) == 4, "count");
_Static_assert(offsetof(rp_net_ring, element_index_mask) == 8, "mask");
_Static_assert(offsetof(rp_net_ring, end_index) == 128, "end");
_Static_assert(offsetof(rp_net_ring, begin_index) == 256, "begin");
_Static_assert(offsetof(rp_net_ring, next_index) == 260, "next");
_Static_assert(offsetof(rp_net_ring, scratch) == 264, "scratch");
_Static_assert(sizeof(rp_net_ring) == 384, "ring header size");

#define RP_RING_PACKET 0x1u
#define RP_RING_FRAGMENT 0x2u
#define RP_RING_TRANSMIT 0x10u
#define RP_RING_RECEIVE 0x20u

/* NET_PACKET (12 bytes in NetAdapterCx) plus the reference of the NDIS packet descriptor. */
typedef struct rp_net_packet {
    uint32_t fragment_index;
    uint16_t fragment_count;
    uint8_t layout[5]; /* NET_PACKET_LAYOUT: L2len:7 L3len:9 L4len:8 L2type:4 L3type:4 L4type:4 reserved:4 */
    uint8_t flags;     /* bit 0 Ignore, bit 1 Scratch */
    uint32_t descriptor;
} rp_net_packet;
_Static_assert(offsetof(rp_net_packet, fragment_count) == 4, "fragment_count");
_Static_assert(offsetof(rp_net_packet, layout) == 6, "layout");
_Static_assert(offsetof(rp_net_packet, flags) == 11, "flags");
_Static_assert(offsetof(rp_net_packet, descriptor) == 12, "descriptor");
_Static_assert(sizeof(rp_net_packet) == 16, "packet size");

/* NET_FRAGMENT, unpacked (NetAdapterCx packs it into 64 bits), plus the data chunk it points at. */
typedef struct rp_net_fragment {
    uint32_t valid_length;
    uint32_t capacity;
    uint32_t chunk; /* index of the data-area chunk */
    uint16_t offset;
    uint8_t flags; /* bit 0 Scratch, bit 1 OsReserved_Bounced */
    uint8_t reserved;
} rp_net_fragment;
_Static_assert(offsetof(rp_net_fragment, capacity) == 4, "capacity");
_Static_assert(offsetof(rp_net_fragment, chunk) == 8, "chunk");
_Static_assert(offsetof(rp_net_fragment, offset) == 12, "offset");
_Static_assert(offsetof(rp_net_fragment, flags) == 14, "flags");
_Static_assert(sizeof(rp_net_fragment) == 16, "fragment size");

/* ---- sealed anonymous segments (memfd_create, F_ADD_SEALS, fallocate need _GNU_SOURCE: shim.c) ---- */

/* The seals a binding segment carries: it can never shrink, grow, or change seals (RP_SEALS_REQUIRED). */
#define RP_SEAL_SHRINK 0x0002 /* F_SEAL_SHRINK */
#define RP_SEAL_GROW 0x0004   /* F_SEAL_GROW */
#define RP_SEAL_SEAL 0x0001   /* F_SEAL_SEAL */
#define RP_SEALS_REQUIRED 0x0007 /* RP_SEAL_SHRINK | RP_SEAL_GROW | RP_SEAL_SEAL */

/* memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING): a descriptor, or -errno. */
int rp_memfd_create_sealable(const char *name);

/* fallocate(fd, 0, 0, size): every page reserved now (ENOSPC/ENOMEM here, never SIGBUS later); 0 or errno. */
int rp_memfd_reserve(int fd, long long size);

/* fcntl(fd, F_ADD_SEALS, seals); 0 or errno. */
int rp_memfd_add_seals(int fd, int seals);

/* fcntl(fd, F_GET_SEALS): the seals (>= 0), or -errno (EINVAL: not a sealable file). */
int rp_memfd_get_seals(int fd);

/* fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length): for tests; 0 or errno. */
int rp_memfd_punch_hole(int fd, long long offset, long long length);

#endif
