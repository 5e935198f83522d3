#!/usr/bin/python3
"""An independent reader of the Parquet files `crl export-metrics --format
parquet` writes, for tests/test_tracking.sh.

Written from the Parquet format description (magic, footer, Thrift compact
protocol, FileMetaData / SchemaElement / RowGroup / ColumnChunk /
ColumnMetaData / PageHeader field numbers, data page v1, PLAIN encoding,
RLE/bit-packed hybrid definition levels), not from crl's writer: a generic
compact-protocol decoder that keeps every field by id, then the columns read
through the metadata. It handles what a flat, uncompressed file needs and
refuses anything else (compression, dictionary pages, nested schemas).

usage: parquet_read.py FILE
Prints the column names on the first line, then one line per row:
"step<TAB>key<TAB>value" (value as repr of the double, or None).
Exits 1 with one line on any error.
"""
import struct
import sys

TYPES = {0: "BOOLEAN", 1: "INT32", 2: "INT64", 3: "INT96", 4: "FLOAT", 5: "DOUBLE",
         6: "BYTE_ARRAY", 7: "FIXED_LEN_BYTE_ARRAY"}


class Compact:
    """Thrift compact protocol: structs become {field id: value}."""

    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def byte(self):
        if self.pos >= len(self.buf):
            raise ValueError("thrift: truncated")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self):
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return out
            if shift > 70:
                raise ValueError("thrift: varint too long")

    def zigzag(self):
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def binary(self):
        n = self.varint()
        if self.pos + n > len(self.buf):
            raise ValueError("thrift: truncated binary")
        v = self.buf[self.pos:self.pos + n]
        self.pos += n
        return v

    def value(self, t):
        if t in (1, 2):  # bool inside a list: one byte
            return self.byte() == 1
        if t == 3:
            return self.byte()
        if t in (4, 5, 6):
            return self.zigzag()
        if t == 7:
            v = struct.unpack("<d", self.buf[self.pos:self.pos + 8])[0]
            self.pos += 8
            return v
        if t == 8:
            return self.binary()
        if t in (9, 10):
            h = self.byte()
            n, et = h >> 4, h & 0x0F
            if n == 15:
                n = self.varint()
            return [self.value(et) for _ in range(n)]
        if t == 12:
            return self.struct()
        raise ValueError("thrift: type %d not handled" % t)

    def struct(self):
        out = {}
        last = 0
        while True:
            h = self.byte()
            if h == 0:
                return out
            t = h & 0x0F
            d = h >> 4
            fid = last + d if d else self.zigzag()
            last = fid
            if t == 1:
                out[fid] = True
            elif t == 2:
                out[fid] = False
            else:
                out[fid] = self.value(t)


def rle_levels(buf, n, bit_width):
    """n levels of the RLE/bit-packed hybrid encoding."""
    out = []
    r = Compact(buf)
    nbytes = (bit_width + 7) // 8
    while len(out) < n:
        h = r.varint()
        if h & 1:  # bit-packed groups of 8
            groups = h >> 1
            data = buf[r.pos:r.pos + groups * bit_width]
            r.pos += groups * bit_width
            bits = int.from_bytes(data, "little")
            for i in range(groups * 8):
                out.append((bits >> (i * bit_width)) & ((1 << bit_width) - 1))
        else:
            count = h >> 1
            v = int.from_bytes(buf[r.pos:r.pos + nbytes], "little")
            r.pos += nbytes
            out.extend([v] * count)
    return out[:n]


def read(path):
    data = open(path, "rb").read()
    if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise ValueError("no PAR1 magic")
    (mlen,) = struct.unpack("<I", data[-8:-4])
    meta_at = len(data) - 8 - mlen
    if meta_at < 4:
        raise ValueError("bad footer length")
    c = Compact(data, meta_at)
    meta = c.struct()
    if c.pos != len(data) - 8:
        raise ValueError("FileMetaData does not end at the footer")
    schema = meta[2]
    root, leaves = schema[0], schema[1:]
    if root.get(5) != len(leaves) or any(5 in s for s in leaves):
        raise ValueError("not a flat schema")
    names = [s[4].decode() for s in leaves]
    num_rows = meta[3]
    columns = {}
    for rg in meta[4]:
        if rg[3] != num_rows or len(meta[4]) != 1:
            raise ValueError("expected one row group of every row")
        for k, chunk in enumerate(rg[1]):
            md = chunk[3]
            leaf = leaves[k]
            if md[4] != 0:
                raise ValueError("compressed column %s" % names[k])
            if [p.decode() for p in md[3]] != [names[k]] or md[1] != leaf[1]:
                raise ValueError("column %d's metadata does not match the schema" % k)
            pos = md[9]
            values = []
            while len(values) < md[5]:
                p = Compact(data, pos)
                ph = p.struct()
                if ph[1] != 0:
                    raise ValueError("page type %d is not a v1 data page" % ph[1])
                size = ph[3]
                if ph[2] != size:
                    raise ValueError("compressed page")
                page = data[p.pos:p.pos + size]
                dph = ph[5]
                n = dph[1]
                if dph[2] != 0:
                    raise ValueError("encoding %d is not PLAIN" % dph[2])
                q = 0
                optional = leaf.get(3) == 1
                if optional:
                    (ln,) = struct.unpack("<I", page[:4])
                    defs = rle_levels(page[4:4 + ln], n, 1)
                    q = 4 + ln
                else:
                    defs = [1] * n
                t = TYPES[leaf[1]]
                for d in defs:
                    if not d:
                        values.append(None)
                    elif t == "INT64":
                        values.append(struct.unpack("<q", page[q:q + 8])[0])
                        q += 8
                    elif t == "DOUBLE":
                        values.append(struct.unpack("<d", page[q:q + 8])[0])
                        q += 8
                    elif t == "BYTE_ARRAY":
                        (ln,) = struct.unpack("<I", page[q:q + 4])
                        values.append(page[q + 4:q + 4 + ln].decode())
                        q += 4 + ln
                    else:
                        raise ValueError("type %s not handled" % t)
                if q != size:
                    raise ValueError("page of %s has %d bytes left over" % (names[k], size - q))
                pos = p.pos + size
            if len(values) != num_rows:
                raise ValueError("column %s has %d values, not %d" % (names[k], len(values),
                                                                       num_rows))
            columns[names[k]] = values
    return names, [[columns[n][i] for n in names] for i in range(num_rows)]


if __name__ == "__main__":
    try:
        names, rows = read(sys.argv[1])
        print("\t".join(names))
        for r in rows:
            print("\t".join(repr(v) if not isinstance(v, str) else v for v in r))
    except (ValueError, KeyError, IndexError, OSError, struct.error, UnicodeDecodeError) as e:
        print("parquet_read: %s" % e, file=sys.stderr)
        sys.exit(1)
