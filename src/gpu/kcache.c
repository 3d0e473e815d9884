/* kcache.c — see kcache.h for the contract and the security rules. */
#define _GNU_SOURCE /* getrandom, O_CLOEXEC/O_NOFOLLOW/O_DIRECTORY, getpwuid_r */
#include "gpu/kcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KCACHE_MAGIC "KPKCACH"  /* 8 bytes with the NUL */
#define KCACHE_HEADER 88        /* magic 8, format 4, header size 4, key 32, length 8, payload SHA-256 32 */
#define KCACHE_MAX_PAYLOAD (1u << 30) /* a larger "kernel" is a corrupted length, not a kernel */
#define KCACHE_NAME_LEN (2 * KP_SHA256_SIZE)
#define KCACHE_TMP_PREFIX ".tmp-"
#define KCACHE_TMP_LEN (5 + 16 + 1 + 16) /* ".tmp-" 16 hex of the key, "-", 16 hex random */

typedef struct mem_entry {
    kp_kcache_key key;
    void *data;
    size_t len;
    struct mem_entry *next;
} mem_entry;

typedef struct cache_file {
    char name[KCACHE_NAME_LEN + 1];
    struct timespec mtime;
    uint64_t size;
} cache_file;

typedef struct file_list {
    cache_file *v;
    size_t n, cap;
    uint64_t total;
} file_list;

/* A put removes files for this long at most (after its first two); an
 * eviction left unfinished goes on at the next puts from the same list
 * (kcache.h). Removing a file that was fsync'ed took 2 ms on an ext4 mounted
 * with discard, and an eviction down to 80% of the default bound removes
 * about 8,700 files. */
#define KCACHE_EVICT_BUDGET_NS (20 * 1000 * 1000L)

struct kp_kcache {
    pthread_mutex_t lock;
    int dfd; /* the checked directory, -1 when disabled */
    char dir[4096];
    char reason[512];
    mem_entry *mem; /* most recently used first */
    int nmem;
    kp_kcache_stats stats;
    /* Size bound (kcache.h). The directory is shared by processes that never
     * talk to each other, so its total is only known by scanning it. Scanning
     * on every put would cost a readdir + stat of every file (thousands) per
     * compiled kernel; instead each cache scans once, at its first put (other
     * processes filled the directory before), then keeps a running estimate:
     * the scanned total plus the bytes it wrote since. Only when the estimate
     * passes the bound does a put rescan (other processes' writes and
     * evictions are then counted exactly) and evict down to 80%: the next
     * scan is then at least a fifth of the bound away in this process's own
     * writes. Several processes each writing less than that between their
     * scans may together overshoot the bound until one of them rescans. */
    uint64_t max_size;      /* 0: unbounded */
    uint64_t size_estimate; /* bytes in cache files, as of the last scan plus own writes since */
    int size_known;         /* a scan happened */
    pthread_mutex_t evict_lock; /* one scan at a time per cache; a put that finds it held skips its scan */
    /* An eviction in progress (under evict_lock): the listing, oldest first,
     * and the next file to consider; backlog_left (under lock) says there is one. */
    file_list backlog;
    size_t backlog_next;
    int backlog_left;
    long evict_budget_ns;
};

void kp__kcache_key(kp_kcache_key *key, size_t n, const void *const *parts, const size_t *lens) {
    kp_sha256 s;
    kp__sha256_init(&s);
    for (size_t k = 0; k < n; k++) {
        unsigned char len[8];
        for (int b = 0; b < 8; b++) len[b] = (unsigned char)((uint64_t)lens[k] >> (8 * b));
        kp__sha256_update(&s, len, sizeof len);
        kp__sha256_update(&s, parts[k], lens[k]);
    }
    kp__sha256_final(&s, key->d);
}

static void hex(const kp_kcache_key *key, char out[2 * KP_SHA256_SIZE + 1]) {
    static const char digits[] = "0123456789abcdef";
    for (int k = 0; k < KP_SHA256_SIZE; k++) {
        out[2 * k] = digits[key->d[k] >> 4];
        out[2 * k + 1] = digits[key->d[k] & 15];
    }
    out[2 * KP_SHA256_SIZE] = 0;
}

/* ------------------------------------------------------------ directory */

static int default_dir(kp_kcache *c, char *parent, size_t psize) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && xdg[0] == '/') { /* the XDG spec ignores relative values */
        snprintf(parent, psize, "%s", xdg);
        return snprintf(c->dir, sizeof c->dir, "%s/libkp", xdg) < (int)sizeof c->dir;
    }
    const char *home = getenv("HOME");
    struct passwd pw, *res = NULL;
    char pwbuf[2048];
    if ((!home || home[0] != '/') && getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res)
        home = res->pw_dir;
    if (!home || home[0] != '/') {
        snprintf(c->reason, sizeof c->reason, "no cache directory: neither KP_CACHE_DIR, XDG_CACHE_HOME nor HOME is set");
        return 0;
    }
    snprintf(parent, psize, "%s/.cache", home);
    return snprintf(c->dir, sizeof c->dir, "%s/.cache/libkp", home) < (int)sizeof c->dir;
}

/* Opens and checks the directory; on refusal leaves dfd = -1 and the reason. */
static void open_dir(kp_kcache *c, const char *dir) {
    char parent[4096] = "";
    if (!dir) {
        const char *env = getenv("KP_CACHE_DIR");
        if (env && strcmp(env, "off") == 0) {
            snprintf(c->reason, sizeof c->reason, "disk cache disabled by KP_CACHE_DIR=off");
            return;
        }
        if (env && *env) dir = env;
    }
    if (dir) {
        if (snprintf(c->dir, sizeof c->dir, "%s", dir) >= (int)sizeof c->dir) {
            snprintf(c->reason, sizeof c->reason, "cache directory path too long");
            return;
        }
    } else if (!default_dir(c, parent, sizeof parent)) {
        if (!c->reason[0]) snprintf(c->reason, sizeof c->reason, "cache directory path too long");
        return;
    }
    if (parent[0]) (void)mkdir(parent, 0700); /* ~/.cache may not exist yet; its failure shows below */
    if (mkdir(c->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(c->reason, sizeof c->reason, "cannot create cache directory %.400s: %s", c->dir, strerror(errno));
        return;
    }
    int fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(c->reason, sizeof c->reason, "cannot open cache directory %.400s: %s", c->dir, strerror(errno));
        return;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0) why = "cannot stat it";
    else if (!S_ISDIR(st.st_mode)) why = "not a directory";
    else if (st.st_uid != geteuid()) why = "not owned by the current user";
    else if (st.st_mode & (S_IWGRP | S_IWOTH)) why = "writable by group or others (chmod 700 it)";
    if (why) {
        snprintf(c->reason, sizeof c->reason, "cache directory %.400s refused: %s", c->dir, why);
        close(fd);
        return;
    }
    c->dfd = fd;
}

int kp__kcache_parse_size(const char *text, uint64_t *bytes) {
    if (!text || *text < '0' || *text > '9') return 0;
    uint64_t v = 0;
    for (; *text >= '0' && *text <= '9'; text++) {
        unsigned d = (unsigned)(*text - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    int shift = 0;
    switch (*text) {
    case 0: break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    default: return 0;
    }
    if (shift && *++text) return 0;
    if (v > UINT64_MAX >> shift) return 0;
    *bytes = v << shift;
    return 1;
}

/* A malformed value falls back to the default rather than to unbounded (0):
 * a typo must not let the directory grow without end. */
static uint64_t max_size_from_env(void) {
    uint64_t v;
    return kp__kcache_parse_size(getenv("KP_CACHE_MAX_SIZE"), &v) ? v : KP_KCACHE_DEFAULT_MAX_SIZE;
}

kp_kcache *kp__kcache_open(const char *dir) {
    kp_kcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->evict_lock, NULL);
    c->dfd = -1;
    c->max_size = max_size_from_env();
    c->evict_budget_ns = KCACHE_EVICT_BUDGET_NS;
    open_dir(c, dir);
    if (c->dfd < 0) c->dir[0] = 0;
    return c;
}

void kp__kcache_close(kp_kcache *c) {
    if (!c) return;
    if (c->dfd >= 0) close(c->dfd);
    for (mem_entry *e = c->mem, *n; e; e = n) {
        n = e->next;
        free(e->data);
        free(e);
    }
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->evict_lock);
    free(c->backlog.v);
    free(c);
}

static kp_kcache *default_cache;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static void open_default(void) { default_cache = kp__kcache_open(NULL); }

kp_kcache *kp__kcache_default(void) {
    pthread_once(&default_once, open_default);
    return default_cache;
}

const char *kp__kcache_disabled_reason(const kp_kcache *c) { return c->dfd >= 0 ? NULL : c->reason; }
const char *kp__kcache_dir(const kp_kcache *c) { return c->dir; }

void kp__kcache_path(const kp_kcache *c, const kp_kcache_key *key, char *buf, size_t size) {
    char h[2 * KP_SHA256_SIZE + 1];
    hex(key, h);
    if (c->dfd < 0) snprintf(buf, size, "%s", "");
    else snprintf(buf, size, "%s/%s", c->dir, h);
}

uint64_t kp__kcache_max_size(kp_kcache *c) {
    pthread_mutex_lock(&c->lock);
    uint64_t v = c->max_size;
    pthread_mutex_unlock(&c->lock);
    return v;
}

void kp__kcache_set_max_size(kp_kcache *c, uint64_t bytes) {
    pthread_mutex_lock(&c->lock);
    c->max_size = bytes;
    pthread_mutex_unlock(&c->lock);
}

void kp__kcache_set_evict_budget(kp_kcache *c, long ns) {
    pthread_mutex_lock(&c->evict_lock);
    c->evict_budget_ns = ns;
    pthread_mutex_unlock(&c->evict_lock);
}

void kp__kcache_get_stats(kp_kcache *c, kp_kcache_stats *out) {
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------ memory */

/* Called with the lock held; takes ownership of data. */
static void mem_insert(kp_kcache *c, const kp_kcache_key *key, void *data, size_t len) {
    for (mem_entry **pp = &c->mem; *pp; pp = &(*pp)->next)
        if (memcmp((*pp)->key.d, key->d, KP_SHA256_SIZE) == 0) {
            mem_entry *e = *pp;
            *pp = e->next;
            free(e->data);
            free(e);
            c->nmem--;
            break;
        }
    mem_entry *e = malloc(sizeof *e);
    if (!e) {
        free(data);
        return;
    }
    e->key = *key;
    e->data = data;
    e->len = len;
    e->next = c->mem;
    c->mem = e;
    if (++c->nmem > KP_KCACHE_MEMORY_ENTRIES) { /* drop the least recently used */
        mem_entry **pp = &c->mem;
        while ((*pp)->next) pp = &(*pp)->next;
        free((*pp)->data);
        free(*pp);
        *pp = NULL;
        c->nmem--;
    }
}

/* Called with the lock held: a malloc'd copy of the entry, moved to the front. */
static int mem_lookup(kp_kcache *c, const kp_kcache_key *key, void **data, size_t *len) {
    for (mem_entry **pp = &c->mem; *pp; pp = &(*pp)->next) {
        mem_entry *e = *pp;
        if (memcmp(e->key.d, key->d, KP_SHA256_SIZE) != 0) continue;
        void *copy = malloc(e->len ? e->len : 1);
        if (!copy) return 0;
        memcpy(copy, e->data, e->len);
        *pp = e->next;
        e->next = c->mem;
        c->mem = e;
        *data = copy;
        *len = e->len;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ disk */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int b = 0; b < 4; b++) p[b] = (unsigned char)(v >> (8 * b));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int b = 0; b < 8; b++) p[b] = (unsigned char)(v >> (8 * b));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int b = 3; b >= 0; b--) v = v << 8 | p[b];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) v = v << 8 | p[b];
    return v;
}

static void make_header(unsigned char h[KCACHE_HEADER], const kp_kcache_key *key, const void *data, size_t len) {
    memset(h, 0, KCACHE_HEADER);
    memcpy(h, KCACHE_MAGIC, 8);
    put_u32(h + 8, KP_KCACHE_FORMAT);
    put_u32(h + 12, KCACHE_HEADER);
    memcpy(h + 16, key->d, KP_SHA256_SIZE);
    put_u64(h + 48, (uint64_t)len);
    kp__sha256(data, len, h + 56);
}

/* Reads the whole file; 1 if it is ours and intact. -1: rejected, 0: absent. */
static int disk_read(const kp_kcache *c, const kp_kcache_key *key, void **data, size_t *len) {
    char name[2 * KP_SHA256_SIZE + 1];
    hex(key, name);
    int fd = openat(c->dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    struct stat st;
    unsigned char h[KCACHE_HEADER];
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && st.st_size >= KCACHE_HEADER &&
             st.st_size - KCACHE_HEADER <= (off_t)KCACHE_MAX_PAYLOAD && pread(fd, h, KCACHE_HEADER, 0) == KCACHE_HEADER;
    ok = ok && memcmp(h, KCACHE_MAGIC, 8) == 0 && get_u32(h + 8) == KP_KCACHE_FORMAT &&
         get_u32(h + 12) == KCACHE_HEADER && memcmp(h + 16, key->d, KP_SHA256_SIZE) == 0 &&
         get_u64(h + 48) == (uint64_t)(st.st_size - KCACHE_HEADER);
    unsigned char *buf = NULL;
    size_t n = ok ? (size_t)get_u64(h + 48) : 0;
    if (ok) {
        buf = malloc(n ? n : 1);
        size_t got = 0;
        while (buf && got < n) {
            ssize_t r = pread(fd, buf + got, n - got, (off_t)(KCACHE_HEADER + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        unsigned char sum[KP_SHA256_SIZE];
        if (buf && got == n) kp__sha256(buf, n, sum);
        ok = buf && got == n && memcmp(sum, h + 56, KP_SHA256_SIZE) == 0;
    }
    /* Recency for the size bound's eviction; a read-only mount or another
     * failure only makes this file look older. */
    if (ok) (void)futimens(fd, NULL);
    close(fd);
    if (!ok) {
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 1;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        s += w;
        n -= (size_t)w;
    }
    return 1;
}

static uint64_t random_suffix(void) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r;
    /* No entropy yet (early boot): pid, time and a counter still differ per writer; O_EXCL catches the rest. */
    static unsigned long counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)getpid() << 40 ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^
           __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
}

static int disk_write(const kp_kcache *c, const kp_kcache_key *key, const void *data, size_t len) {
    char name[2 * KP_SHA256_SIZE + 1], tmp[2 * KP_SHA256_SIZE + 32];
    hex(key, name);
    int fd = -1;
    for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
        snprintf(tmp, sizeof tmp, ".tmp-%.16s-%016llx", name, (unsigned long long)random_suffix());
        fd = openat(c->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) return 0;
    }
    if (fd < 0) return 0;
    unsigned char h[KCACHE_HEADER];
    make_header(h, key, data, len);
    int ok = write_all(fd, h, sizeof h) && write_all(fd, data, len) && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    /* rename is atomic: readers see the previous file or this one, never a mix */
    if (ok) ok = renameat(c->dfd, tmp, c->dfd, name) == 0;
    if (!ok) unlinkat(c->dfd, tmp, 0);
    return ok;
}

/* ------------------------------------------------------------ size bound */

static int is_lower_hex(const char *s, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f'))) return 0;
    return 1;
}

/* The names this file writes: the key in lowercase hex, and disk_write's temporaries. */
static int is_cache_name(const char *name) { return strlen(name) == KCACHE_NAME_LEN && is_lower_hex(name, KCACHE_NAME_LEN); }
static int is_tmp_name(const char *name) {
    return strlen(name) == KCACHE_TMP_LEN && strncmp(name, KCACHE_TMP_PREFIX, 5) == 0 && is_lower_hex(name + 5, 16) &&
           name[21] == '-' && is_lower_hex(name + 22, 16);
}

static int push_file(file_list *l, const char *name, const struct stat *st) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        cache_file *v = realloc(l->v, cap * sizeof *v);
        if (!v) return 0;
        l->v = v;
        l->cap = cap;
    }
    cache_file *f = &l->v[l->n++];
    memcpy(f->name, name, KCACHE_NAME_LEN + 1);
    f->mtime = st->st_mtim;
    f->size = (uint64_t)st->st_size;
    l->total += f->size;
    return 1;
}

/* A temporary file nobody wrote to for an hour belongs to a writer that died
 * between create and rename; a live writer's file is minutes old at most
 * (it writes one kernel and fsyncs it). Removing one by mistake only makes
 * that writer's rename fail, which kp__kcache_put reports as a memory-only put. */
static void remove_if_stale_tmp(int dfd, const char *name, const struct stat *st) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec - st->st_mtim.tv_sec > KP_KCACHE_STALE_TMP_SECONDS) (void)unlinkat(dfd, name, 0);
}

/* Lists the directory's cache files (regular, owned by the user, key-named;
 * lstat-like, no link followed) and removes stale temporaries. 0 when the
 * directory cannot be read or memory runs out. */
static int scan_dir(int dfd, file_list *l) {
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset, unlike dup */
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return 0;
    }
    int ok = 1;
    uid_t me = geteuid();
    struct dirent *e;
    while (ok && (e = readdir(d)) != NULL) {
        int cache = is_cache_name(e->d_name), tmp = !cache && is_tmp_name(e->d_name);
        struct stat st;
        if (!cache && !tmp) continue;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue; /* removed meanwhile */
        if (!S_ISREG(st.st_mode) || st.st_uid != me) continue;
        if (cache) ok = push_file(l, e->d_name, &st);
        else remove_if_stale_tmp(dfd, e->d_name, &st);
    }
    closedir(d);
    return ok;
}

static int older_first(const void *a, const void *b) {
    const cache_file *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

static long elapsed_ns(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)(t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

static int newer(struct timespec a, struct timespec b) {
    return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

/* Removes files of l (oldest first) from *next on until the total is at
 * most target or budget_ns has passed (two files at least, so that the
 * eviction outpaces the puts); never `keep`, the file the triggering put just
 * wrote (a put is not undone by its own eviction, even when that one file is
 * larger than the target), nor a file used since the listing (its mtime is
 * newer). Returns the number of files removed; l->total becomes the remaining
 * total. A file another process removed first counts as removed here too: it
 * is gone. */
static long evict_oldest(int dfd, file_list *l, size_t *next, uint64_t target, const char *keep, long budget_ns) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long removed = 0;
    while (*next < l->n && l->total > target) {
        if (removed >= 2 && elapsed_ns(&t0) >= budget_ns) break;
        const cache_file *f = &l->v[(*next)++];
        struct stat st;
        if (strcmp(f->name, keep) == 0) continue;
        if (fstatat(dfd, f->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && newer(st.st_mtim, f->mtime)) continue;
        if (unlinkat(dfd, f->name, 0) != 0 && errno != ENOENT) continue;
        l->total -= f->size;
        removed++;
    }
    return removed;
}

/* Lists the directory into c->backlog, oldest first; the list is kept only
 * when its total is past the bound (l->total is the listed total either
 * way). 0 when the directory cannot be read. */
static int list_for_eviction(kp_kcache *c, uint64_t max) {
    file_list *l = &c->backlog;
    l->n = 0;
    l->total = 0;
    c->backlog_next = 0;
    int ok = scan_dir(c->dfd, l);
    if (ok && l->total > max) qsort(l->v, l->n, sizeof *l->v, older_first);
    else l->n = 0;
    return ok;
}

/* Called without the lock after a successful disk write of `written` bytes. */
static void enforce_size_bound(kp_kcache *c, const kp_kcache_key *key, uint64_t written) {
    pthread_mutex_lock(&c->lock);
    uint64_t max = c->max_size;
    if (c->size_known) c->size_estimate += written;
    int resume = max > 0 && c->backlog_left;
    int scan = max > 0 && !resume && (!c->size_known || c->size_estimate > max);
    pthread_mutex_unlock(&c->lock);
    if ((!scan && !resume) || pthread_mutex_trylock(&c->evict_lock) != 0) return; /* another thread of this cache evicts */
    file_list *l = &c->backlog;
    int ok = scan ? list_for_eviction(c, max) : 1;
    uint64_t before = l->total, target = max - max / 5;
    long removed = 0;
    if (ok && l->n) {
        char keep[KCACHE_NAME_LEN + 1];
        hex(key, keep);
        removed = evict_oldest(c->dfd, l, &c->backlog_next, target, keep, c->evict_budget_ns);
    }
    uint64_t left = l->total;
    int more = ok && l->n && c->backlog_next < l->n && left > target;
    if (!more) l->n = l->total = 0, c->backlog_next = 0;
    pthread_mutex_lock(&c->lock);
    c->stats.size_scans += scan;
    c->stats.evicted_files += removed;
    if (scan && ok) { /* writes of other threads during the scan may be missed: the next scan counts them */
        c->size_estimate = left;
        c->size_known = 1;
    } else if (resume) {
        uint64_t freed = before - left;
        c->size_estimate = c->size_estimate > freed ? c->size_estimate - freed : 0;
    }
    c->backlog_left = more;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->evict_lock);
}

/* ------------------------------------------------------------ get / put */

int kp__kcache_get(kp_kcache *c, const kp_kcache_key *key, void **data, size_t *len) {
    pthread_mutex_lock(&c->lock);
    int hit = mem_lookup(c, key, data, len);
    if (hit) c->stats.memory_hits++;
    pthread_mutex_unlock(&c->lock);
    if (hit) return 1;
    int r = c->dfd >= 0 ? disk_read(c, key, data, len) : 0;
    void *copy = NULL;
    if (r == 1 && (copy = malloc(*len ? *len : 1)) != NULL) memcpy(copy, *data, *len);
    pthread_mutex_lock(&c->lock);
    if (r == 1) {
        c->stats.disk_hits++;
        if (copy) mem_insert(c, key, copy, *len);
    } else {
        c->stats.misses++;
        if (r < 0) c->stats.rejected_files++;
    }
    pthread_mutex_unlock(&c->lock);
    return r == 1;
}

int kp__kcache_put(kp_kcache *c, const kp_kcache_key *key, const void *data, size_t len) {
    void *copy = malloc(len ? len : 1);
    if (copy) memcpy(copy, data, len);
    int ok = c->dfd >= 0 && len <= KCACHE_MAX_PAYLOAD && disk_write(c, key, data, len);
    pthread_mutex_lock(&c->lock);
    if (copy) mem_insert(c, key, copy, len);
    if (ok) c->stats.disk_writes++;
    pthread_mutex_unlock(&c->lock);
    if (ok) enforce_size_bound(c, key, (uint64_t)len + KCACHE_HEADER);
    return ok;
}
