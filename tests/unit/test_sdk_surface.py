"""The SDK's public surface is typed (issue 22): every public function and method of every exported
class names its keyword parameters (no `**fields`), every parameter and return is annotated, and
`ChannelClient.issue_ecard` takes no default assurance (the channel states which check it made)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ecard
import ecard.testing


def public_callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    own = [n for n, v in vars(ecard.testing).items()
           if not n.startswith("_") and getattr(v, "__module__", "") == "ecard.testing"]
    modules = [(ecard, ecard.__all__), (ecard.testing, own)]
    for module, names in modules:
        for name in names:
            value = getattr(module, name)
            if inspect.isfunction(value) and value.__module__.startswith("ecard"):
                yield f"{module.__name__}.{name}", value
            elif inspect.isclass(value) and value.__module__.startswith("ecard") \
                    and not issubclass(value, BaseException):
                for attr in dir(value):
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    member = inspect.getattr_static(value, attr)
                    if getattr(member, "__module__", "ecard").split(".")[0] != "ecard":
                        continue  # inherited from the standard library (enum, dataclass)
                    if isinstance(member, (classmethod, staticmethod)):
                        member = member.__func__
                    if inspect.isfunction(member):
                        yield f"{module.__name__}.{name}.{attr}", member


SURFACE = sorted(public_callables())


def test_the_surface_is_found() -> None:
    names = {name for name, _ in SURFACE}
    assert {"ecard.PharmacyClient.verify", "ecard.AsyncPharmacyClient.settle", "ecard.ChannelClient.issue_ecard",
            "ecard.AdminClient.report_lost", "ecard.VerifyBatcher.verify", "ecard.TokenSigner.mint",
            "ecard.testing.World.mint", "ecard.TLSConfig.from_files"} <= names


@pytest.mark.parametrize(("name", "function"), SURFACE, ids=[name for name, _ in SURFACE])
def test_no_catch_all_keywords_and_every_parameter_typed(name: str, function: Callable[..., Any]) -> None:
    signature = inspect.signature(function)
    catch_all = [p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert catch_all == [], f"{name} takes **{catch_all[0] if catch_all else ''}: name its keywords"
    untyped = [p.name for p in signature.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    assert untyped == [], f"{name}: parameters without a type: {untyped}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"


def test_issue_ecard_states_its_assurance() -> None:
    assurance = inspect.signature(ecard.ChannelClient.issue_ecard).parameters["assurance"]
    assert assurance.kind is inspect.Parameter.KEYWORD_ONLY
    assert assurance.default is inspect.Parameter.empty


def test_one_definition_of_transient() -> None:
    """RetryConfig's default codes, the error classes' `retryable` and a Verify's lost answer all read
    TRANSIENT_STATUS_NAMES."""
    assert {code.name for code in ecard.RetryConfig().retry_codes} == ecard.TRANSIENT_STATUS_NAMES
    errors = [cls for cls in vars(ecard).values() if isinstance(cls, type) and issubclass(cls, ecard.EcardError)]
    for cls in errors:
        said = not issubclass(cls, ecard.VerifyInterrupted) and cls.status_name in ecard.TRANSIENT_STATUS_NAMES
        assert cls.retryable is said, cls.__name__
    assert ecard.Unreachable("no", "h:1").retryable and not ecard.InvalidArgument("x").retryable
