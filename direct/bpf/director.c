// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0
//
// hafront's direct-routing director (LVS-DR): for a TCP packet to a configured VIP:port it
// picks a server (the flow's pinned server, else the service's Maglev table indexed by a
// hash of the 4-tuple), rewrites the destination MAC to the server's and the source MAC
// to this interface's, and sends the frame back out of the interface it came in on. The
// server holds the VIP on `lo` and answers the client directly. Everything else passes up
// the stack untouched. One logic, two hooks: XDP (XDP_TX) and tc clsact ingress
// (bpf_redirect to the same interface).
//
// Userspace (direct/src/lib.rs) mirrors every struct and constant below; keep them in step.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Services (VIP:port pairs) one director serves.
#define MAX_SERVICES 64
// Servers per service.
#define MAX_BACKENDS 64
// Maglev lookup table size: a prime well above 100 x MAX_BACKENDS (the paper's advice for
// small disruption), small enough that a table (one byte per slot) is one map value.
#define TABLE_SIZE 16381
// Flows remembered (LRU): a flow evicted re-picks by the same Maglev table, so it keeps
// its server unless the server set changed since.
#define FLOW_CAPACITY 65536
// A table slot with no server (the service has none).
#define NO_BACKEND 0xff
// The counter index (within a service) of packets that found no server and passed.
#define UNMATCHED MAX_BACKENDS

struct service_key {
    __u32 address; // network byte order
    __u16 port;    // network byte order
    __u16 padding;
};

struct service {
    __u32 index;  // the service's slot: tables, servers and counters
    __u32 active; // which half of its table pair is live (0 or 1)
};

struct table {
    __u8 slots[TABLE_SIZE]; // server slot per Maglev entry, NO_BACKEND when none
};

struct backend {
    __u8 mac[ETH_ALEN];
    __u8 local;   // this host serves: pass up the local stack
    __u8 present; // in the current server set
    __u32 id;     // unique per server assignment: a flow pinned to a previous occupant of
                  // the slot re-picks
};

struct flow_key {
    __u32 source;
    __u32 destination;
    __u16 source_port;
    __u16 destination_port;
};

struct flow {
    __u32 slot;
    __u32 id;
};

struct counters {
    __u64 packets;
    __u64 bytes;
    __u64 flows; // new flows assigned
};

struct config {
    __u8 mac[ETH_ALEN]; // this interface's address: the rewritten frames' source
    __u16 padding;
    __u32 ifindex;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_SERVICES);
    __type(key, struct service_key);
    __type(value, struct service);
} services SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_SERVICES * 2);
    __type(key, __u32);
    __type(value, struct table);
} tables SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_SERVICES * MAX_BACKENDS);
    __type(key, __u32);
    __type(value, struct backend);
} backends SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, FLOW_CAPACITY);
    __type(key, struct flow_key);
    __type(value, struct flow);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, MAX_SERVICES * (MAX_BACKENDS + 1));
    __type(key, __u32);
    __type(value, struct counters);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct config);
} settings SEC(".maps");

enum verdict {
    PASS,    // up the local stack
    FORWARD, // MACs rewritten: out of the same interface
};

static __always_inline __u32 flow_hash(const struct flow_key *key)
{
    // splitmix64's finaliser over the 4-tuple; userspace never needs to reproduce it, but
    // every director must compute the same one (it is fixed here) so that a new master
    // sends a flow to the server the old one chose.
    __u64 hash = ((__u64)key->source << 32 | key->destination) ^ 0x9e3779b97f4a7c15ULL;
    hash ^= ((__u64)key->source_port << 16 | key->destination_port) * 0xbf58476d1ce4e5b9ULL;
    hash = (hash ^ (hash >> 30)) * 0xbf58476d1ce4e5b9ULL;
    hash = (hash ^ (hash >> 27)) * 0x94d049bb133111ebULL;
    hash ^= hash >> 31;
    return (__u32)hash;
}

static __always_inline void count(__u32 service, __u32 slot, __u64 bytes, int new_flow)
{
    __u32 index = service * (MAX_BACKENDS + 1) + slot;
    struct counters *totals = bpf_map_lookup_elem(&counters, &index);
    if (!totals)
        return;
    // Per-CPU values: no other CPU writes this copy.
    totals->packets += 1;
    totals->bytes += bytes;
    totals->flows += new_flow;
}

static __always_inline struct backend *present_backend(__u32 service, __u32 slot, __u32 id)
{
    if (slot >= MAX_BACKENDS)
        return 0;
    __u32 index = service * MAX_BACKENDS + slot;
    struct backend *backend = bpf_map_lookup_elem(&backends, &index);
    if (!backend || !backend->present || backend->id != id)
        return 0;
    return backend;
}

// Decides for the frame in [data, data_end) of `length` bytes; rewrites its MACs when it
// is to be forwarded.
static __always_inline enum verdict direct(void *data, void *data_end, __u64 length)
{
    struct ethhdr *ethernet = data;
    if ((void *)(ethernet + 1) > data_end || ethernet->h_proto != bpf_htons(ETH_P_IP))
        return PASS;
    struct iphdr *ip = (void *)(ethernet + 1);
    if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5 ||
        ip->protocol != IPPROTO_TCP)
        return PASS;
    // Fragments (first or later) go up the stack: later ones carry no ports to match.
    if (ip->frag_off & bpf_htons(0x3fff))
        return PASS;
    // The TCP header follows the IP options, if any.
    struct tcphdr *tcp = (void *)ip + ip->ihl * 4;
    if ((void *)(tcp + 1) > data_end)
        return PASS;

    struct service_key service_key = {
        .address = ip->daddr,
        .port = tcp->dest,
    };
    struct service *service = bpf_map_lookup_elem(&services, &service_key);
    if (!service || service->index >= MAX_SERVICES)
        return PASS;
    __u32 service_index = service->index;

    struct flow_key flow_key = {
        .source = ip->saddr,
        .destination = ip->daddr,
        .source_port = tcp->source,
        .destination_port = tcp->dest,
    };
    struct backend *backend = 0;
    struct flow *flow = bpf_map_lookup_elem(&flows, &flow_key);
    if (flow)
        backend = present_backend(service_index, flow->slot, flow->id);
    if (!backend) {
        // A new flow, or one whose server left: pick by the live Maglev table.
        __u32 table_index = service_index * 2 + (service->active & 1);
        struct table *table = bpf_map_lookup_elem(&tables, &table_index);
        if (!table)
            return PASS;
        __u32 position = flow_hash(&flow_key) % TABLE_SIZE;
        // The verifier does not follow a modulo: bound the index where it can see it.
        asm volatile("" : "+r"(position));
        if (position >= TABLE_SIZE)
            return PASS;
        __u32 slot = table->slots[position];
        if (slot >= MAX_BACKENDS) {
            count(service_index, UNMATCHED, length, 0);
            return PASS;
        }
        __u32 index = service_index * MAX_BACKENDS + slot;
        backend = bpf_map_lookup_elem(&backends, &index);
        if (!backend || !backend->present) {
            count(service_index, UNMATCHED, length, 0);
            return PASS;
        }
        struct flow pinned = {.slot = slot, .id = backend->id};
        bpf_map_update_elem(&flows, &flow_key, &pinned, BPF_ANY);
        count(service_index, slot, length, 1);
    } else {
        count(service_index, flow->slot, length, 0);
    }
    if (backend->local)
        return PASS;

    __u32 zero = 0;
    struct config *config = bpf_map_lookup_elem(&settings, &zero);
    if (!config)
        return PASS;
    __builtin_memcpy(ethernet->h_source, config->mac, ETH_ALEN);
    __builtin_memcpy(ethernet->h_dest, backend->mac, ETH_ALEN);
    return FORWARD;
}

SEC("xdp")
int hafront_xdp(struct xdp_md *context)
{
    void *data = (void *)(long)context->data;
    void *data_end = (void *)(long)context->data_end;
    return direct(data, data_end, data_end - data) == FORWARD ? XDP_TX : XDP_PASS;
}

SEC("classifier")
int hafront_tc(struct __sk_buff *skb)
{
    // Headers up to a TCP header behind maximal IP options must be in the linear part.
    const __u32 headers = sizeof(struct ethhdr) + 60 + sizeof(struct tcphdr);
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    if (data + headers > data_end && data_end - data < skb->len) {
        bpf_skb_pull_data(skb, skb->len < headers ? skb->len : headers);
        data = (void *)(long)skb->data;
        data_end = (void *)(long)skb->data_end;
    }
    if (direct(data, data_end, skb->len) != FORWARD)
        return TC_ACT_OK;
    __u32 zero = 0;
    struct config *config = bpf_map_lookup_elem(&settings, &zero);
    if (!config)
        return TC_ACT_OK;
    return bpf_redirect(config->ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
