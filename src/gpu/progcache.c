/* progcache.c — see progcache.h. */
#include "gpu/progcache.h"

#include <stdlib.h>
#include <string.h>

struct kp_progcache_entry {
    int device;
    kp_kcache_key key;
    void *program;
    kp_progcache_entry *next;
};

void kp__progcache_key(kp_kcache_key *key, const char *source, const char *options) {
    const char *opts = options ? options : "";
    const void *parts[2] = {source, opts};
    size_t lens[2] = {strlen(source) + 1, strlen(opts)}; /* the NUL separates source from options */
    kp__kcache_key(key, 2, parts, lens);
}

void *kp__progcache_find(kp_progcache *c, int device, const kp_kcache_key *key) {
    void *found = NULL;
    pthread_mutex_lock(&c->lock);
    for (kp_progcache_entry *e = c->head; e && !found; e = e->next)
        if (e->device == device && memcmp(e->key.d, key->d, sizeof key->d) == 0) found = e->program;
    pthread_mutex_unlock(&c->lock);
    return found;
}

int kp__progcache_add(kp_progcache *c, int device, const kp_kcache_key *key, void *program) {
    kp_progcache_entry *e = malloc(sizeof *e);
    if (!e) return 0;
    e->device = device;
    e->key = *key;
    e->program = program;
    pthread_mutex_lock(&c->lock);
    e->next = c->head;
    c->head = e;
    kp_progcache_entry *evict = NULL;
    if (c->release && c->cap > 0 && ++c->n > c->cap) { /* drop the oldest */
        kp_progcache_entry **pp = &c->head;
        while ((*pp)->next) pp = &(*pp)->next;
        evict = *pp;
        *pp = NULL;
        c->n--;
    }
    pthread_mutex_unlock(&c->lock);
    if (evict) {
        c->release(evict->program);
        free(evict);
    }
    return 1;
}
