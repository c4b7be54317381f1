#!/usr/bin/env python3
"""Writes carbon pickle frames (4-byte big-endian length + pickle) made by Python's own pickle, in
every protocol, into tests/data/fuzz/fuzz_pickle/ (the fuzz seeds, also read by the unit tests), with
what each must decode to in tests/data/pickle/expected/. Also hand-made Python 2 style frames and
hostile frames the reader must refuse. Re-run after changing the data set: python3 gen_pickle_seeds.py
"""
import os
import pickle
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, '..', 'fuzz', 'fuzz_pickle')
EXPECTED = os.path.join(HERE, 'expected')

shared = (1700000007, 5)  # the same tuple twice: a memo GET in every protocol
METRICS = [
    ('a.b.c', (1700000000, 1.5)),
    ('unicode.\u00e9.\u6e29\u5ea6', (1700000002, -7)),
    ('big.long', (1700000003, 2 ** 40)),
    ('str.value', ('1700000004', '3.25')),
    ('neg', (1700000005, -2 ** 31)),
    ('small', (1700000006.0, 0.0001)),
    ('reuse.x', shared),
    ('reuse.y', shared),
    ('back\\slash', (1700000008, 1e20)),
    ('int.sizes', (255, 65535)),
    ('bool', (1700000009, True)),
]
# bytes names and values: protocols 3+ (below 3 Python 3 pickles bytes with a GLOBAL, refused).
BYTES_METRICS = [(b'bytes.name', (1700000010, b'2.5')), ('x', (b'1700000011', 7))]
LISTS = [[name, list(point)] for name, point in METRICS]


def frame(payload):
    return struct.pack('!L', len(payload)) + payload


def expected_rows(metrics):
    rows = []
    for name, (ts, value) in metrics:
        if isinstance(name, bytes):
            name = name.decode()
        rows.append('%s\t%r\t%r' % (name, float(ts), float(value)))
    return ''.join(row + '\n' for row in rows)


def write(name, payload, metrics=None):
    with open(os.path.join(SEEDS, name), 'wb') as f:
        f.write(frame(payload))
    if metrics is not None:
        with open(os.path.join(EXPECTED, name), 'w', encoding='utf-8') as f:
            f.write(expected_rows(metrics))


def main():
    os.makedirs(SEEDS, exist_ok=True)
    os.makedirs(EXPECTED, exist_ok=True)
    for proto in range(6):
        write('proto%d_tuples' % proto, pickle.dumps(METRICS, protocol=proto), METRICS)
        write('proto%d_lists' % proto, pickle.dumps(LISTS, protocol=proto), METRICS)
        if proto >= 3:
            write('proto%d_bytes' % proto, pickle.dumps(BYTES_METRICS, protocol=proto), BYTES_METRICS)
    write('proto2_empty', pickle.dumps([], protocol=2), [])
    # What carbon-relay and carbon's client send: protocol 2 of a list of tuples.
    batch = [('carbon.relay.m%04d' % i, (1700000000 + i, i * 0.5)) for i in range(500)]
    write('carbon_client_batch', pickle.dumps(batch, protocol=2), batch)
    # Python 2's cPickle, by hand: STRING, LONG, INT booleans, BINSTRING, SHORT_BINSTRING, LONG1.
    py2_metrics = [('py2.s', (1700000000, 12345678901234567890)), ("py2.A'q", (1700000001, 1)),
                   ('py2.bin', (1709935858, 2)), ('py2.short', (1709935859, -1))]
    write('py2_proto0', b"(lp0\n(S'py2.s'\np1\n(I1700000000\nL12345678901234567890L\ntp2\ntp3\na"
          b"(S'py2.\\x41\\'q'\n(I1700000001\nI01\nttp4\na.", py2_metrics[:2])
    write('py2_proto2', b'\x80\x02]q\x00(T\x07\x00\x00\x00py2.binq\x01J\xf2\x8c\xebeK\x02\x86\x86q\x02'
          b'U\tpy2.short\x8a\x04\xf3\x8c\xebe\x8a\x01\xff\x86\x86e.', py2_metrics[2:])
    # Hostile or broken frames: each must be refused as a whole.
    write('evil_global_reduce', b"cos\nsystem\n(S'echo pwned'\ntR.")
    write('evil_stack_global', b'\x80\x04\x95\x1b\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x04echo\x85R.')
    write('evil_inside_list', pickle.dumps([('a', (1, 2))], protocol=2)[:-1] + b'c__builtin__\neval\n.')
    write('evil_build', b'\x80\x02]q\x00}b.')
    write('truncated', pickle.dumps(METRICS, protocol=2)[:57])
    write('unknown_dict', pickle.dumps({'a': (1, 2)}, protocol=2))
    write('bad_get', b'\x80\x02]q\x00h\x07.')
    write('huge_put', b'\x80\x02]r\xff\xff\xff\x7f.')
    write('long_unicode_length', b'\x80\x03]X\xff\xff\xff\x7fabc.')
    write('not_a_list', pickle.dumps(42, protocol=2))
    write('trailing_bytes', pickle.dumps([], protocol=2) + b'xx')
    write('appends_without_mark', b'\x80\x02]K\x01e.')
    write('marks_only', b'(' * 200 + b'.')
    # Not refused as a frame, but no element of it is a metric.
    write('malformed_elements', pickle.dumps([('a',), ('b', (1,)), (1, (2, 3)), ('c', (None, 1)), ('ok', (1700000000, 1))],
                                             protocol=2), [('ok', (1700000000, 1))])


if __name__ == '__main__':
    main()
