from real.etcdpb import rpc_pb2 as _rpc_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QuotaSetRequest(_message.Message):
    __slots__ = ("prefix", "max_keys", "max_bytes")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    MAX_KEYS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    prefix: bytes
    max_keys: int
    max_bytes: int
    def __init__(self, prefix: _Optional[bytes] = ..., max_keys: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class QuotaDeleteRequest(_message.Message):
    __slots__ = ("prefix",)
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    prefix: bytes
    def __init__(self, prefix: _Optional[bytes] = ...) -> None: ...

class QuotaListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NamespaceUsage(_message.Message):
    __slots__ = ("prefix", "max_keys", "max_bytes", "used_keys", "used_bytes")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    MAX_KEYS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_KEYS_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    prefix: bytes
    max_keys: int
    max_bytes: int
    used_keys: int
    used_bytes: int
    def __init__(self, prefix: _Optional[bytes] = ..., max_keys: _Optional[int] = ..., max_bytes: _Optional[int] = ..., used_keys: _Optional[int] = ..., used_bytes: _Optional[int] = ...) -> None: ...

class QuotaResponse(_message.Message):
    __slots__ = ("header", "quotas")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    header: _rpc_pb2.ResponseHeader
    quotas: _containers.RepeatedCompositeFieldContainer[NamespaceUsage]
    def __init__(self, header: _Optional[_Union[_rpc_pb2.ResponseHeader, _Mapping]] = ..., quotas: _Optional[_Iterable[_Union[NamespaceUsage, _Mapping]]] = ...) -> None: ...
