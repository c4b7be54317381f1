#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/, README Tests): tests/data/fuzz/<target>/<name>.

Each seed is a meaningful input: the valid forms, the edge cases the parsers decide on, and the inputs
behind the crashes found so far (issue 10 items 1, 3 and 5), which must stay regression cases. Run it
again after changing a list below; the files are committed so a fuzz run needs nothing but the tree.
"""
import gzip
import os
import shutil
import struct
import subprocess
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, seeds):
    directory = os.path.join(HERE, target)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


LINES = {
    "canonical": "servers.web01.cpu.user 42 1700000000",
    "canonical_crlf": "servers.web01.cpu.user 42 1700000000\r",
    "float_value": "a.b 3.14159 1700000000",
    "exponent": "a.b 1e10 1700000000",
    "negative_value": "a.b -12.5 1700000000",
    "huge_exponent": "a.b 1e309 1700000000",
    "nan": "a.b nan 1700000000",
    "inf": "a.b inf 1700000000",
    "now": "a.b 1 -1",
    "negative_timestamp": "a.b 1 -2",
    "fraction_timestamp": "a.b 1 -1.5",
    "float_timestamp": "a.b 1 1700000000.5",
    "tabs": "a.b\t1\t1700000000",
    "many_spaces": "  a.b   1    1700000000  ",
    "two_fields": "a.b 1",
    "four_fields": "a.b 1 2 3",
    "empty": "",
    "only_spaces": "    ",
    "underscore_digits": "a.b 1_000 1700000000",
    "fullwidth_digit": "a.b \uff11 1700000000",
    "nbsp": "a.b\u00a01 1700000000",
    "invalid_utf8": b"a\xffb 1 1700000000",
    "inner_cr": "a.b 1\r 1700000000",
    "nul": b"a.\x00b 1 1700000000",
    "vertical_tab": "a.b\x0b1 1700000000",
    "long_name": "x" * 3000 + " 1 1700000000",
    "hex_value": "a.b 0x10 1700000000",
    "plus_value": "a.b +1 1700000000",
    "timestamp_overflow": "a.b 1 99999999999999999999999",
    "batch": "a.b 1 1700000000\nc.d 2 1700000001\r\nbad line\n\ne.f 3 -1\n",
}

ADMIN = {
    "getdest": "getdest",
    "getdest_crlf": "getdest\r\n",
    "stats": "stats\n",
    "help": "help",
    "putdest": "putdest 10.0.5.25:2003",
    "putdest_instance": "putdest 10.0.5.25:2003:a",
    "putdest_v6": "putdest [2001:db8::1]:2003:b",
    "putdest_https": "putdest https://gw.example.com:443",
    "putdest_https_path": "putdest https://gw.example.com:8443/polymur",
    # issue 10 item 1: std::stoul threw out of the supervisor and killed every process.
    "putdest_huge_port": "putdest https://gw:99999999999999999999\n",
    "putdest_huge_port_plain": "putdest gw:99999999999999999999",
    "putdest_port_65536": "putdest gw:65536",
    "putdest_control_chars": "putdest ev\x1b[31mil:2003",
    "putdest_two_args": "putdest a:1 b:2",
    "putdest_no_arg": "putdest",
    "deldest": "deldest 10.0.5.25:2003",
    "deldest_garbage": "deldest :::::",
    "unknown": "shutdown now",
    "empty": "",
    "newline_only": "\n",
    "tabs": "\tputdest\t127.0.0.1:2003\t",
    "binary": b"\x00\xff\xfeputdest\x00",
    "uppercase": "GETDEST",
}

DESTINATIONS = {
    "plain": "10.0.5.20:2003",
    "instance": "10.0.5.20:2003:a",
    "empty_instance": "10.0.5.20:2003:",
    "name": "carbon.example.com:2004",
    "v6": "[2001:db8::1]:2003",
    "v6_instance": "[2001:db8::1]:2003:b",
    "v6_unclosed": "[2001:db8::1:2003",
    "any_host": ":2003",
    "no_port": "10.0.5.20",
    "empty_port": "10.0.5.20:",
    "port_zero": "10.0.5.20:0",
    "port_65535": "10.0.5.20:65535",
    "port_65536": "10.0.5.20:65536",
    "huge_port": "gw:99999999999999999999",
    "negative_port": "gw:-1",
    "plus_port": "gw:+80",
    "spaced": "  10.0.5.20:2003  ",
    "https": "https://gw.example.com:443",
    "https_path": "https://gw.example.com:443/a/b",
    "https_huge_port": "https://gw:99999999999999999999",
    "https_v6": "https://[::1]:8443",
    "https_no_port": "https://gw",
    "colons": ":::",
    "empty": "",
    "control": "a\x01b:2003",
}

CIDRS = {
    "v4_net": "10.0.0.0/8",
    "v4_host": "10.1.2.3",
    "v4_32": "10.1.2.3/32",
    "v4_0": "0.0.0.0/0",
    "v4_host_bits": "10.1.2.3/8",
    "v4_33": "10.0.0.0/33",
    "v6_net": "2001:db8::/32",
    "v6_host": "::1",
    "v6_128": "::1/128",
    "v6_129": "::1/129",
    "v6_0": "::/0",
    "mapped": "::ffff:10.0.0.0/104",
    "negative": "10.0.0.0/-1",
    "huge_prefix": "10.0.0.0/99999999999999999999",
    "empty_prefix": "10.0.0.0/",
    "spaces": " 10.0.0.0/8 ",
    "list": "10.0.0.0/8,192.168.0.0/16,::1",
    "list_empty_entry": "10.0.0.0/8,,::1",
    "garbage": "not-an-address/8",
    "empty": "",
    "zone": "fe80::1%eth0/64",
}

CONFIG = {
    "minimal": "listen-addr = 127.0.0.1:2003\n",
    "destinations": "destinations = 10.0.5.20:2003, 10.0.5.30:2003:b\ndistribution = broadcast\n",
    "hash_route": "distribution = hash-route\nhash-type = fnv1a_ch\nreplication-factor = 2\n"
                  "destinations = 10.0.0.1:2004:a,10.0.0.2:2004:b,10.0.0.3:2004:c\n",
    "comments": "# a comment\n\n   # indented comment\nworkers = 2 # trailing\n",
    "dashes": "--queue-cap = 100\n",
    "crlf": "workers = 2\r\nqueue-cap = 10\r\n",
    "gateway": "mode = gateway\nhttps-listen-addr = 0.0.0.0:8443\ncert = /c.pem\nkey = /k.pem\nca-cert = /ca.pem\n"
               "key-prefix = true\ntrusted-proxies = 10.0.0.0/8, ::1\n",
    "proxy": "mode = proxy\ngateway = https://gw.example.com:443\nclient-cert = /c.pem\nclient-key = /k.pem\n",
    "no_equals": "workers 2\n",
    "unknown_option": "no-such-option = 1\n",
    "twice": "workers = 2\nworkers = 3\n",
    "negative": "workers = -1\n",
    "overflow": "queue-cap = 99999999999999999999999\n",
    "empty_value": "workers =\n",
    "bad_bool": "console-out = maybe\n",
    # issue 10 item 3: Boost's placeholder substitution spun forever building the error message.
    "percent_value": "queue-cap = %value%\n",
    "percent_name": "%canonical_option% = 1\n",
    "percent_destinations": "destinations = %value%:2003\n",
    "huge_port": "listen-addr = 0.0.0.0:99999999999999999999\n",
    "config_in_config": "config = /etc/polymur/polymur.conf\n",
    "help_in_config": "help = 1\n",
    "binary": b"\x00\xff= \x01\n",
    "long_line": "destinations = " + ",".join("10.0.%d.%d:2003" % (i // 250, i % 250) for i in range(300)) + "\n",
}

# A queue file header (shm/queue.hpp, layout 2): the fields the validation trusts.
MAGIC = 0x3145554555514d50
LAYOUT = 2
HEADER_SIZE = 384
RING_CONTROL_SIZE = 128
PAGE = 4096


def data_offset(rings):
    return PAGE + (rings * RING_CONTROL_SIZE + PAGE - 1) // PAGE * PAGE


def queue_file(rings, capacity, file_size=None, layout=LAYOUT, magic=MAGIC, positions=(), data=b"", length=None,
               header_size=HEADER_SIZE):
    """The first `length` bytes of a queue file (the fuzzer grows it to the size it claims)."""
    if file_size is None:
        file_size = (data_offset(rings) + rings * capacity) % (1 << 64)
    header = struct.pack("<QIIIIQQq", magic, layout, header_size, RING_CONTROL_SIZE, rings, capacity, file_size, 0)
    header += b"fuzz.example:2003".ljust(256, b"\0")
    out = bytearray(header.ljust(HEADER_SIZE, b"\0").ljust(PAGE, b"\0"))
    for i, (write_pos, lines_written, publish_seq, read_pos, lines_read, commit_seq) in enumerate(positions):
        control = struct.pack("<QQQQ", write_pos, lines_written, 0, publish_seq).ljust(64, b"\0")
        control += struct.pack("<QQQ", read_pos, lines_read, commit_seq).ljust(64, b"\0")
        out[PAGE + i * RING_CONTROL_SIZE:PAGE + (i + 1) * RING_CONTROL_SIZE] = control
    if data:
        out = out.ljust(data_offset(rings), b"\0") + data
    if length is not None:
        out = out[:length]
    return bytes(out)


LINE = b"fuzz.metric 1 1700000000\n"
QUEUES = {
    "empty_one_ring": queue_file(1, 4096),
    "empty_two_rings": queue_file(2, 1024),
    "empty_max_rings": queue_file(65, 64),
    "one_line": queue_file(1, 4096, positions=[(len(LINE), 1, 2, 0, 0, 0)], data=LINE),
    "half_read": queue_file(2, 1024, positions=[(2 * len(LINE), 2, 2, len(LINE), 1, 2), (0, 0, 0, 0, 0, 0)],
                            data=LINE * 2),
    "wrapped": queue_file(1, 64, positions=[(64 + 10, 3, 6, 60, 2, 4)], data=LINE * 3),
    "full": queue_file(1, 64, positions=[(64, 2, 2, 0, 0, 0)], data=(LINE * 3)[:64]),
    # issue 10 item 5: 2 rings x 2^63 bytes wrapped to 8192 and passed the size check.
    "ring_size_overflow": queue_file(2, 1 << 63, file_size=8192, length=HEADER_SIZE),
    "ring_count_overflow": queue_file(0xFFFFFFFF, 1 << 40, length=HEADER_SIZE),
    # issue 10 item 4: a producer or consumer that died inside its sequence lock.
    "odd_publish_seq": queue_file(1, 4096, positions=[(len(LINE), 1, 3, 0, 0, 0)], data=LINE),
    "odd_commit_seq": queue_file(1, 4096, positions=[(len(LINE), 1, 2, len(LINE), 1, 1)], data=LINE),
    "read_beyond_write": queue_file(1, 4096, positions=[(0, 0, 0, 100, 1, 2)]),
    "more_than_capacity": queue_file(1, 64, positions=[(1000, 10, 2, 0, 0, 0)]),
    "lines_read_beyond_written": queue_file(1, 4096, positions=[(len(LINE), 1, 2, 0, 5, 2)], data=LINE),
    "no_newline_in_ring": queue_file(1, 64, positions=[(40, 1, 2, 0, 0, 0)], data=b"x" * 64),
    "capacity_not_power_of_two": queue_file(1, 1000),
    "capacity_zero": queue_file(1, 0),
    "no_rings": queue_file(0, 4096),
    "bad_magic": queue_file(1, 4096, magic=0x1234),
    "old_layout": queue_file(1, 4096, layout=1),
    "wrong_header_size": queue_file(1, 4096, header_size=100),
    "truncated": queue_file(1, 4096, file_size=1 << 30, length=HEADER_SIZE),
    "too_short": b"PMQUEUE1",
    "empty": b"",
}

# fuzz_http_response: the first byte is the size of the pieces the answer arrives in (mod 16, plus 1).
RESPONSES = {
    "ok": "\x00HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\naccepted 3, invalid 0\n",
    "ok_pieces": "\x03HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\naccepted 3, invalid 0\n",
    "bytewise": "\x00HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong",
    "lf_only": "\x05HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "busy": "\x07HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 19\r\n\r\nqueues full; retry\n",
    "too_large": "\x02HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 5\r\n\r\nlarge",
    "chunked": "\x04HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
    "chunked_and_length": "\x01HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "continue": "\x00HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "http10": "\x00HTTP/1.0 200 OK\r\n\r\nbody until close",
    "keep_alive_10": "\x00HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    "no_content": "\x00HTTP/1.1 204 No Content\r\n\r\n",
    # issue 10: Content-Length: 1x2 read as 12.
    "length_1x2": "\x00HTTP/1.1 200 OK\r\nContent-Length: 1x2\r\n\r\n0123456789ab",
    "length_overflow": "\x00HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551617\r\n\r\n",
    "two_lengths": "\x00HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "chunk_overflow": "\x00HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
    "chunk_too_long": "\x00HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    "bad_status": "\x00HTTP/1.1 2x0 OK\r\n\r\n",
    "not_http": "\x00SSH-2.0-OpenSSH_9.2\r\n",
    "folded_header": "\x00HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    "truncated": "\x00HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    "empty": "\x00",
}

# fuzz_gateway_request: first byte bit 0 = gzip the body in the harness, bits 1-3 = pieces - 1.
GZ = gzip.compress(b"a.b 1 1700000000\nc.d 2 -1\n", mtime=0)
REQUESTS = {
    "plain_lines": b"\x01Content-Encoding: gzip\r\nContent-Length: 30\r\n\r\na.b 1 1700000000\nc.d 2 -1\n",
    "namespace": b"\x03X-Polymur-Namespace: tenant-a\r\n\r\nweb01.cpu 1 1700000000\n",
    "two_namespaces": b"\x01X-Polymur-Namespace: victim\r\nX-Polymur-Namespace: tenant-a\r\n\r\ncpu 1 1\n",
    "two_lengths": b"\x01Content-Length: 10\r\nContent-Length: 11\r\n\r\nx 1 1\n",
    "same_lengths": b"\x01Content-Length: 6\r\nContent-Length: 6\r\n\r\nx 1 1\n",
    "length_and_chunked": b"\x01Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\nx 1 1\n",
    "bad_length": b"\x01Content-Length: 1x2\r\n\r\nx 1 1\n",
    "brotli": b"\x01Content-Encoding: br\r\n\r\nx 1 1\n",
    "x_gzip": b"\x01Content-Encoding: x-gzip\r\n\r\nx 1 1\n",
    "raw_gzip": b"\x00Content-Encoding: gzip\r\n\r\n" + GZ,
    "raw_gzip_pieces": b"\x0eContent-Encoding: gzip\r\n\r\n" + GZ,
    "two_members": b"\x00\n" + GZ + gzip.compress(b"e.f 3 3\n", mtime=0),
    "truncated_gzip": b"\x00\n" + GZ[:-5],
    "bomb": b"\x00\n" + gzip.compress(b"\0" * (4 << 20), 9, mtime=0),
    "not_gzip": b"\x00\nthis is not gzip",
    "invalid_lines": b"\x01\na.b 1\n\nbad line here\nx\xffy 1 1\n" + b"y" * 17000 + b" 1 1\n",
    "long_name_with_namespace": b"\x01X-Polymur-Namespace: t\n\n" + b"n" * 19998 + b" 1 1\n",
    "empty": b"\x00",
}

write("fuzz_line", LINES)
write("fuzz_admin_command", ADMIN)
write("fuzz_destination", DESTINATIONS)
write("fuzz_cidr", CIDRS)
write("fuzz_config", CONFIG)
write("fuzz_queue_file", QUEUES)
write("fuzz_http_response", RESPONSES)
write("fuzz_gateway_request", REQUESTS)


# The aggregator's state file (both versions) and queued records (aggregate/state_file.hpp).
AGGREGATOR_STATE = {
    "v2": "polymur-aggregator-state 2\nrules 2\n0123456789abcdef\nfedcba9876543210\nemitted_through_ms 1700000123000\n"
          "pending 2\n14 127.0.0.1:2003 4096 1 26\nagg.a 1.000000 1700000120\n"
          "0  7 1 47\n0123456789abcdef 1700000123 agg.a 1 1700000120\n",
    "v2_first_start": "polymur-aggregator-state 2\nrules 0\nemitted_through_ms -9223372036854775808\npending 0\n",
    "v1": "polymur-aggregator-state 1\nemitted_through_ms 1700000123000\npending 1\n"
          "14 127.0.0.1:2003 10 1 26\nagg.a 1.000000 1700000120\n",
    "records": "0123456789abcdef 1700000100 a.b.c 1.5 1700000099\n3 1700000100 a.b 1 1700000099.7\n"
               "0123456789abcdef 1 a 1\n",
}
write("fuzz_aggregator_state", AGGREGATOR_STATE)

# Compressed streams (fuzz_gzip_stream, fuzz_lz4_stream): the first byte picks read and buffer sizes.
STREAM_TEXT = b"".join(b"servers.web%02d.cpu %d 1700000000\n" % (i % 7, i) for i in range(300))
GZIP_STREAMS = {
    "one_member": b"\x00" + gzip.compress(STREAM_TEXT, mtime=0),
    "small_pieces": b"\x11" + gzip.compress(STREAM_TEXT, mtime=0),
    "two_members": b"\x35" + gzip.compress(STREAM_TEXT[:500], mtime=0) + gzip.compress(STREAM_TEXT[500:], 9, mtime=0),
    "sync_flushed": b"\x07" + (lambda c: c.compress(STREAM_TEXT[:900]) + c.flush(zlib.Z_SYNC_FLUSH) +
                               c.compress(STREAM_TEXT[900:]) + c.flush())(zlib.compressobj(6, zlib.DEFLATED, 31)),
    "truncated": b"\x00" + gzip.compress(STREAM_TEXT, mtime=0)[:-9],
    "bomb": b"\xf0" + gzip.compress(b"0" * (4 << 20), 9, mtime=0),
    "plain_lines": b"\x00" + STREAM_TEXT[:200],
}
write("fuzz_gzip_stream", GZIP_STREAMS)

TAGGED_NAMES = {
    "semicolons": b"cpu;host=a;dc=x",
    "openmetrics": b'cpu{host="a",dc="x\\"y",path="c:\\\\d"}',
    "openmetrics_colon_comma": b'cpu{host="a":,dc="x"}',
    "repeated_and_name": b"~~cpu;name=z;host=a;host=b",
    "empty_value": b"cpu;host=",
    "bad_tag": b"cpu;ho!st=a",
    "value_with_tilde": b"cpu;host=~a",
    "untagged": b"plain.metric.name",
}
write("fuzz_tag_normalize", TAGGED_NAMES)


def lz4_frame(data, *args):
    return subprocess.run(["lz4", "-c"] + list(args), input=data, stdout=subprocess.PIPE, check=True).stdout


if shutil.which("lz4"):
    LZ4_STREAMS = {
        "default": b"\x00" + lz4_frame(STREAM_TEXT),
        "small_linked_blocks": b"\x22" + lz4_frame(STREAM_TEXT * 40, "-B4", "-BD"),
        "block_checksums": b"\x13" + lz4_frame(STREAM_TEXT, "-B4", "-BX"),
        "no_content_checksum": b"\x00" + lz4_frame(STREAM_TEXT, "--no-frame-crc"),
        "two_frames": b"\x41" + lz4_frame(STREAM_TEXT[:500]) + lz4_frame(STREAM_TEXT[500:], "-9"),
        "truncated": b"\x00" + lz4_frame(STREAM_TEXT)[:-7],
        "legacy": b"\x00" + lz4_frame(STREAM_TEXT, "-l"),
        "bomb": b"\xf0" + lz4_frame(b"0" * (4 << 20), "-B4"),
        "skippable": b"\x00" + b"\x50\x2a\x4d\x18\x04\x00\x00\x00abcd" + lz4_frame(STREAM_TEXT[:100]),
    }
    write("fuzz_lz4_stream", LZ4_STREAMS)
