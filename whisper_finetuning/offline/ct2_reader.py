"""Read a CTranslate2 `model.bin` (format version 6) into numpy arrays.

The layout (little-endian): u32 version, string spec name, u32 spec revision, u32 variable count, then per
variable: string name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, raw bytes; then u32 alias count and
(alias, target) string pairs. A string is a u16 length that counts a trailing NUL, then the bytes.
"""

import struct
from dataclasses import dataclass

import numpy as np

# CTranslate2's DataType enum, in order.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
BFLOAT16 = 5
SUPPORTED_VERSION = 6


class CT2FormatError(ValueError):
    pass


@dataclass
class CT2Model:
    spec_name: str
    spec_revision: int
    variables: dict  # name -> numpy array (aliases resolved to the same array)


class _Reader:
    def __init__(self, buffer: bytes, source: str):
        self.buffer = memoryview(buffer)
        self.offset = 0
        self.source = source

    def take(self, size: int) -> memoryview:
        end = self.offset + size
        if end > len(self.buffer):
            raise CT2FormatError(
                f"{self.source} ends after {len(self.buffer)} bytes but the model needs at least {end}: "
                "the file is truncated or not a CTranslate2 model.bin"
            )
        chunk = self.buffer[self.offset : end]
        self.offset = end
        return chunk

    def unpack(self, fmt: str):
        chunk = self.take(struct.calcsize("<" + fmt))
        return struct.unpack("<" + fmt, chunk)[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self.take(length))
        if not raw.endswith(b"\0"):
            raise CT2FormatError(f"{self.source}: malformed string at byte {self.offset - length}")
        return raw[:-1].decode("utf-8")


def read_ct2_model(buffer: bytes, source: str = "model.bin") -> CT2Model:
    """Parse the bytes of a model.bin. `source` names the file(s) in error messages."""
    reader = _Reader(buffer, source)
    version = reader.unpack("I")
    if version != SUPPORTED_VERSION:
        raise CT2FormatError(
            f"{source} has CTranslate2 format version {version}; this reader supports version {SUPPORTED_VERSION}"
        )
    spec_name = reader.string()
    spec_revision = reader.unpack("I")
    variables = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        rank = reader.unpack("B")
        shape = tuple(reader.unpack("I") for _ in range(rank))
        dtype_code = reader.unpack("B")
        num_bytes = reader.unpack("I")
        raw = reader.take(num_bytes)
        if dtype_code == BFLOAT16:
            # numpy has no bfloat16: widen to float32 by placing the 16 bits in the high half.
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype_code in DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype_code]).newbyteorder("<"))
        else:
            raise CT2FormatError(f"{source}: variable {name!r} has unknown dtype code {dtype_code}")
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise CT2FormatError(f"{source}: variable {name!r} has {array.size} values for shape {shape}")
        variables[name] = array.reshape(shape)
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    if reader.offset != len(reader.buffer):
        raise CT2FormatError(f"{source}: {len(reader.buffer) - reader.offset} unexpected bytes after the model")
    return CT2Model(spec_name, spec_revision, variables)
