#!/usr/bin/python3
"""An independent reader of TensorBoard event files, for tests/test_tracking.sh.

Written from the format descriptions (TFRecord framing; protobuf wire format;
the Event / Summary / Summary.Value field numbers), not from crl's writer:
a bit-by-bit CRC32C (Castagnoli, reflected polynomial 0x82F63B78) checked
against the standard check value, every record's two masked CRCs checked,
and a hand-written protobuf decoder that skips unknown fields.

usage: tfevents_read.py FILE
Prints one line per scalar: "step<TAB>tag<TAB>value" (value as repr of the
float32 read back), after a first line "version<TAB>brain.Event:2".
Exits 1 with one line on any framing, CRC or decoding error.
"""
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0x82F63B78
            else:
                crc >>= 1
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, i):
    shift = 0
    out = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return out, i
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf):
    """(field number, wire type, value) of a message; value is an int for
    varints, bytes for length-delimited, raw bytes for fixed."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = varint(buf, i)
        elif w == 1:
            v = buf[i:i + 8]
            i += 8
        elif w == 2:
            n, i = varint(buf, i)
            v = buf[i:i + n]
            i += n
        elif w == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % w)
        if i > len(buf):
            raise ValueError("truncated field %d" % f)
        yield f, w, v


def main():
    assert crc32c(b"123456789") == 0xE3069283, "CRC32C check value"
    data = open(sys.argv[1], "rb").read()
    i = 0
    out = []
    n_records = 0
    while i < len(data):
        if i + 12 > len(data):
            raise ValueError("truncated record header at byte %d" % i)
        head = data[i:i + 8]
        (length,) = struct.unpack("<Q", head)
        (hcrc,) = struct.unpack("<I", data[i + 8:i + 12])
        if hcrc != masked(head):
            raise ValueError("length CRC mismatch at byte %d" % i)
        body = data[i + 12:i + 12 + length]
        if len(body) != length or i + 16 + length > len(data):
            raise ValueError("truncated record at byte %d" % i)
        (dcrc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
        if dcrc != masked(body):
            raise ValueError("data CRC mismatch at byte %d" % i)
        i += 16 + length
        step = 0
        wall = None
        version = None
        values = []
        for f, w, v in fields(body):
            if f == 1 and w == 1:
                (wall,) = struct.unpack("<d", v)
            elif f == 2 and w == 0:
                step = v
            elif f == 3 and w == 2:
                version = v.decode()
            elif f == 5 and w == 2:
                for sf, sw, sv in fields(v):
                    if sf == 1 and sw == 2:
                        tag = None
                        val = None
                        for vf, vw, vv in fields(sv):
                            if vf == 1 and vw == 2:
                                tag = vv.decode()
                            elif vf == 2 and vw == 5:
                                (val,) = struct.unpack("<f", vv)
                        if tag is None or val is None:
                            raise ValueError("a Value without tag or simple_value")
                        values.append((tag, val))
        if wall is None:
            raise ValueError("an Event without wall_time")
        if n_records == 0:
            if version != "brain.Event:2":
                raise ValueError("first record is not file_version brain.Event:2")
            out.append("version\t%s" % version)
        for tag, val in values:
            out.append("%d\t%s\t%r" % (step, tag, val))
        n_records += 1
    if n_records == 0:
        raise ValueError("no records")
    print("\n".join(out))


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError, UnicodeDecodeError, AssertionError) as e:
        print("tfevents_read: %s" % e, file=sys.stderr)
        sys.exit(1)
