#!/usr/bin/env python3
"""Writes a safetensors file from the command line, independently of APC's writer.

usage: write_safetensors.py OUT NAME:DTYPE:SHAPE:VALUES ...
  DTYPE  F32 | F64 | I64 | I32
  SHAPE  dims joined by 'x' ('' for a scalar), e.g. 2x3
  VALUES comma-separated numbers, row-major
Also: --raw-header TEXT writes TEXT as the header with no tensors (for error tests).
"""
import json
import struct
import sys

FORMATS = {"F32": "f", "F64": "d", "I64": "q", "I32": "i"}


def main(argv):
    out = argv[1]
    if argv[2] == "--raw-header":
        header = argv[3].encode()
        with open(out, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header)
        return 0
    header, data = {}, b""
    for spec in argv[2:]:
        name, dtype, shape, values = spec.split(":")
        dims = [int(d) for d in shape.split("x")] if shape else []
        numbers = [float(v) if dtype.startswith("F") else int(v) for v in values.split(",") if v != ""]
        blob = struct.pack("<%d%s" % (len(numbers), FORMATS[dtype]), *numbers)
        header[name] = {"dtype": dtype, "shape": dims, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
