from ecard.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TokenClaims(_message.Message):
    __slots__ = ("version", "issuer_id", "kid", "ecard_id", "nonce", "issued_at", "expires_at", "purposes", "assurance")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    ECARD_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    ASSURANCE_FIELD_NUMBER: _ClassVar[int]
    version: int
    issuer_id: str
    kid: str
    ecard_id: str
    nonce: bytes
    issued_at: int
    expires_at: int
    purposes: _containers.RepeatedScalarFieldContainer[_types_pb2.Purpose]
    assurance: _types_pb2.Assurance
    def __init__(self, version: _Optional[int] = ..., issuer_id: _Optional[str] = ..., kid: _Optional[str] = ..., ecard_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., issued_at: _Optional[int] = ..., expires_at: _Optional[int] = ..., purposes: _Optional[_Iterable[_Union[_types_pb2.Purpose, str]]] = ..., assurance: _Optional[_Union[_types_pb2.Assurance, str]] = ...) -> None: ...

class SignedToken(_message.Message):
    __slots__ = ("claims", "signature")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    claims: bytes
    signature: bytes
    def __init__(self, claims: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class AssuranceClaims(_message.Message):
    __slots__ = ("version", "issuer_id", "kid", "card_no", "assurance", "checked_at", "nonce", "binding_code")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ISSUER_ID_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    CARD_NO_FIELD_NUMBER: _ClassVar[int]
    ASSURANCE_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    BINDING_CODE_FIELD_NUMBER: _ClassVar[int]
    version: int
    issuer_id: str
    kid: str
    card_no: str
    assurance: _types_pb2.Assurance
    checked_at: int
    nonce: bytes
    binding_code: str
    def __init__(self, version: _Optional[int] = ..., issuer_id: _Optional[str] = ..., kid: _Optional[str] = ..., card_no: _Optional[str] = ..., assurance: _Optional[_Union[_types_pb2.Assurance, str]] = ..., checked_at: _Optional[int] = ..., nonce: _Optional[bytes] = ..., binding_code: _Optional[str] = ...) -> None: ...

class SignedAssurance(_message.Message):
    __slots__ = ("claims", "signature")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    claims: bytes
    signature: bytes
    def __init__(self, claims: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
