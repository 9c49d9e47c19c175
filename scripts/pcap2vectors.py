#!/usr/bin/env python3
"""Extract TIPC messages from pcap files (Ethernet link type) into golden-vector .hex files.

Usage: pcap2vectors.py OUTDIR KERNEL_VERSION PCAP...

Handles the Ethernet bearer (ethertype 0x88ca) and the UDP bearer (IPv4, port 6118, with IPv4
fragment reassembly: the kernel's UDP bearer MTU is 14000, so large TIPC packets arrive as IP
fragments). Writes OUTDIR/{udp,eth}/NNN-<user>-<type>-<dir>[-tag].hex (see FORMAT.md) and
OUTDIR/messages.tsv (one line per captured message, for OBSERVATIONS.md). Python 3 stdlib only.
"""
import os
import struct
import sys

NODES = {"10.99.0.11": "a", "10.99.0.12": "b", "10.99.0.1": "host",
         "52:54:00:63:00:0b": "a", "52:54:00:63:00:0c": "b", "52:54:00:63:00:01": "host"}
USERS = {0: "data-low", 1: "data-medium", 2: "data-high", 3: "data-critical",
         5: "bcast-protocol", 6: "msg-bundler", 7: "link-protocol", 8: "conn-manager",
         9: "group-protocol", 10: "tunnel-protocol", 11: "name-distributor",
         12: "msg-fragmenter", 13: "link-config", 14: "msg-crypto"}
DATA_T = ["conn", "mcast", "named", "direct", "grp-evt", "grp-bcast", "grp-mcast", "grp-ucast"]
TYPES = {5: ["state"], 6: ["bundle"], 7: ["state", "reset", "activate"],
         8: ["conn-probe", "conn-probe-reply", "conn-ack"],
         9: ["join", "leave", "adv", "ack", "reclaim", "remit"], 10: ["synch", "failover"],
         11: ["publication", "withdrawal"], 12: ["first", "fragment", "last"],
         13: ["dsc-req", "dsc-resp", "dsc-trial", "dsc-trial-fail"], 14: ["key-distr"]}
ERR = {1: "no_name", 2: "no_port", 3: "no_node", 4: "overload", 5: "conn_shutdown"}


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    else:
        e = ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack(e + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, want 1 (Ethernet)")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        yield sec + frac / (1e9 if nano else 1e6), data[off:off + incl]
        off += incl


def mac(b):
    return ":".join(f"{x:02x}" for x in b)


def ip4(b):
    return ".".join(str(x) for x in b)


def messages(paths):
    """Yield (ts, bearer, src, dst, src_str, dst_str, tipc_bytes)."""
    frags = {}
    for path in paths:
        for ts, fr in read_pcap(path):
            if len(fr) < 14:
                continue
            dmac, smac = fr[0:6], fr[6:12]
            et = struct.unpack(">H", fr[12:14])[0]
            pl = fr[14:]
            if et == 0x88CA:
                if len(pl) < 4:
                    continue
                size = struct.unpack(">I", pl[:4])[0] & 0x1FFFF
                yield (ts, "eth", NODES.get(mac(smac), mac(smac)),
                       "all" if dmac == b"\xff" * 6 else NODES.get(mac(dmac), mac(dmac)),
                       mac(smac), mac(dmac), pl[:size])
            elif et == 0x0800 and len(pl) >= 20:
                ihl = (pl[0] & 15) * 4
                tot = struct.unpack(">H", pl[2:4])[0]
                ident = struct.unpack(">H", pl[4:6])[0]
                ff = struct.unpack(">H", pl[6:8])[0]
                proto = pl[9]
                src, dst = ip4(pl[12:16]), ip4(pl[16:20])
                body = pl[ihl:tot]
                if proto != 17:
                    continue
                mf, foff = ff & 0x2000, (ff & 0x1FFF) * 8
                if mf or foff:
                    key = (src, dst, ident)
                    lst = frags.setdefault(key, [])
                    lst.append((foff, body, bool(mf)))
                    lst.sort(key=lambda x: x[0])
                    # complete when we have offset 0, a last fragment and no holes
                    if lst[0][0] != 0 or lst[-1][2]:
                        continue
                    buf, ok = b"", True
                    for o, b, _ in lst:
                        if o != len(buf):
                            ok = False
                            break
                        buf += b
                    if not ok:
                        continue
                    del frags[key]
                    body = buf
                if len(body) < 8:
                    continue
                sp, dp, ulen = struct.unpack(">HHH", body[:6])
                if sp != 6118 and dp != 6118:
                    continue
                first = int(dst.split(".")[0])
                yield (ts, "udp", NODES.get(src, src),
                       "all" if 224 <= first < 240 else NODES.get(dst, dst),
                       f"{src}:{sp}", f"{dst}:{dp}", body[8:ulen])


def w(m, i):
    return struct.unpack(">I", m[4 * i:4 * i + 4])[0] if len(m) >= 4 * i + 4 else 0


def describe(m):
    """Return (user_name, type_name, tag, text) for one TIPC message."""
    w0, w1, w2 = w(m, 0), w(m, 1), w(m, 2)
    user = (w0 >> 25) & 15
    hsize = ((w0 >> 21) & 15) * 4
    size = w0 & 0x1FFFF
    mtype = (w1 >> 29) & 7
    uname = USERS.get(user, f"u{user}")
    tname = (DATA_T[mtype] if user <= 3 else
             (TYPES.get(user, [])[mtype] if mtype < len(TYPES.get(user, [])) else f"t{mtype}"))
    ack, seq = w2 >> 16, w2 & 0xFFFF
    tag, txt = "", [f"size={size} hsize={hsize}"]
    nonseq = (w0 >> 20) & 1
    if user != 13:
        txt.append(f"ack={ack} seqno={seq} bcast_ack={w1 & 0xFFFF} non_seq={nonseq}")
    if user <= 3:
        err = (w1 >> 25) & 15
        syn = (w0 >> 17) & 1
        txt.append(f"errcode={err} syn={syn} orig={w(m,4)} dest={w(m,5)}")
        if err:
            tag = "err-" + ERR.get(err, str(err))
        elif syn:
            tag = "syn"
        if hsize >= 40 and mtype in (1, 2, 5, 6, 7):
            txt.append(f"name={w(m,8)}:{w(m,9)}" + (f":{w(m,10)}" if mtype == 1 else ""))
        if mtype == 0 and size == hsize and not err:
            tag = "empty"
    elif user == 7:
        session, probe = w(m, 5) >> 16, w(m, 5) & 1
        keepalive = (w0 >> 19) & 1
        gap = (w1 >> 16) & 0x1FFF if mtype == 0 else 0
        txt.append(f"session={session} last_bcast={w(m,4)>>16} next_sent={w(m,4)&0xFFFF} "
                   f"w5flags={w(m,5)&0xFFFF:#06x} max_pkt={(w(m,9)>>16)*4} tol={w(m,9)&0xFFFF}")
        if mtype == 0:
            txt.append(f"probe={probe} keepalive={keepalive} seq_gap={gap} bc_gap={w(m,8)&0x3FF} "
                       f"data_len={size-hsize}")
            if probe:
                tag = "probe"
            elif keepalive:
                tag = "reply"
            else:
                tag = "ack"
            if gap:
                tag += "-gap"
            if size - hsize > 4:
                tag += "-gapblocks"
        else:
            name = m[hsize:hsize + 16]
            ifname = name.split(bytes(1))[0].decode(errors="replace")
            txt.append(f"if_name={ifname!r} data={name.hex()}")
            if (w(m, 5) >> 13) & 1:
                tag = "stopping"
    elif user == 11:
        bulk, last = (w1 >> 28) & 1, (w1 >> 27) & 1
        n = (size - hsize) // 20
        txt.append(f"bulk={bulk} last_bulk={last} non_legacy={(w1>>26)&1} named_seqno={w(m,4)&0xFFFF} "
                   f"items={n} destnode={w(m,7):#x}")
        for i in range(n):
            it = struct.unpack(">5I", m[hsize + 20 * i:hsize + 20 * i + 20])
            txt.append("item=%d:%d:%d/port=%d/key=%d" % it)
        tag = "lastbulk" if last else ("bulk" if bulk else "single")
    elif user == 12:
        txt.append(f"fragm_no={w(m,4)>>16} msgno={w(m,4)&0xFFFF} importance={w(m,9)&7}")
    elif user == 6:
        txt.append(f"msgcnt={w(m,9)>>16} importance={w(m,9)&7}")
    elif user == 5:
        txt.append(f"last_bcast={w(m,4)>>16} bc_ack_invalid={(w(m,5)>>14)&1} destnode={w(m,7):#x}")
        if not nonseq:
            tag = "bcinit"
    elif user == 8:
        txt.append(f"conn_ack={w(m,9)>>16} adv_win={w(m,9)&0xFFFF}")
    elif user == 9:
        txt.append(f"bc_syncpt={w(m,9)>>16} adv_win={w(m,9)&0xFFFF} orig={w(m,4)} dest={w(m,5)}")
    elif user == 13:
        txt.append(f"caps={(w1>>16)&0x1FFF:#x} sig={w1&0xFFFF:#06x} node={w(m,3):#x} netid={w(m,4)} "
                   f"media_type={w(m,5)}")
    return uname, tname, tag, " ".join(txt)


def hexwords(m):
    h = m.hex()
    words = [h[i:i + 8] for i in range(0, len(h), 8)]
    return "\n".join(" ".join(words[i:i + 8]) for i in range(0, len(words), 8)) + "\n"


def main():
    out, kver, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    keep = {}
    counters = {"udp": 0, "eth": 0}
    tsv = open(os.path.join(out, "messages.tsv"), "w")
    for ts, bearer, s, d, ss, ds, m in messages(paths):
        if len(m) < 24:
            continue
        uname, tname, tag, txt = describe(m)
        tsv.write(f"{ts:.6f}\t{bearer}\t{s}2{d}\t{uname}\t{tname}\t{tag}\t{len(m)}\t{txt}\n")
        key = (bearer, uname, tname, tag, f"{s}2{d}")
        n = keep.get(key, 0)
        # at most 3 per (user, type, tag, direction); one for very common direction variants
        if n >= (3 if tag or uname not in ("link-protocol",) else 2):
            continue
        keep[key] = n + 1
        counters[bearer] += 1
        name = f"{counters[bearer]:03d}-{uname}-{tname}-{s}2{d}" + (f"-{tag}" if tag else "") + ".hex"
        os.makedirs(os.path.join(out, bearer), exist_ok=True)
        with open(os.path.join(out, bearer, name), "w") as f:
            f.write(f"# kernel {kver} {ss}->{ds} {uname} {tname} t={ts:.6f}: {txt}\n")
            f.write(hexwords(m))
    tsv.close()
    print(counters)


if __name__ == "__main__":
    main()
