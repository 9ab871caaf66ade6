"""Helpers for the auth tests: a state machine driven in log order, with a
clock, and the usual root + role + user set-up."""

from __future__ import annotations

from chainfire_core.auth import (
    AuthEnableRequest,
    AuthenticateCommand,
    AuthenticateResponse,
    AuthInfo,
    AuthorizedCommand,
    Permission,
    PermissionType,
    RoleAddRequest,
    RoleGrantPermissionRequest,
    UserAddCommand,
    UserGrantRoleRequest,
    hash_password,
)
from chainfire_core.auth.messages import CheckedCommand
from chainfire_core.config import StateMachineConfig
from chainfire_core.mvcc.messages import prefix_end
from chainfire_core.state_machine import Command, StateMachine

ITERATIONS = 1_000  # cheap hashes: the tests hash many passwords


def user_add(name: str, password: str = "pw", salt: bytes = b"salt-0123456789a") -> UserAddCommand:
    return UserAddCommand(name=name, password_hash=hash_password(password, salt=salt,
                                                                 iterations=ITERATIONS))


def prefix_perm(prefix: bytes, perm_type: PermissionType = PermissionType.READWRITE) -> Permission:
    return Permission(perm_type=perm_type, key=prefix, range_end=prefix_end(prefix))


class Driver:
    """Applies commands at consecutive log indexes; `now_ms` is settable."""

    def __init__(self, config: StateMachineConfig | None = None) -> None:
        self.sm = StateMachine(config)
        self.index = 0
        self.now_ms = 0

    def __call__(self, command: Command) -> object:
        self.index += 1
        return self.sm.apply(command, now_ms=self.now_ms, index=self.index)

    def as_user(self, info: AuthInfo, command: CheckedCommand) -> object:
        return self(AuthorizedCommand.of(info, command))

    def authenticate(self, name: str, password: str = "pw", prefix: str = "tokenprefix") -> str:
        revision = self.sm.auth.check_password(name, password)
        response = self(AuthenticateCommand(name=name, token_prefix=prefix,
                                            checked_revision=revision))
        assert isinstance(response, AuthenticateResponse), response
        return response.token

    def login(self, name: str, password: str = "pw") -> AuthInfo:
        return self.sm.auth_info(self.authenticate(name, password), now_ms=self.now_ms)


def with_root_and_app(driver: Driver, *, enable: bool = True) -> None:
    """root (root role), role "app" with READWRITE on /app/, user alice in app."""
    driver(user_add("root", "rootpw"))
    driver(UserGrantRoleRequest(user="root", role="root"))
    driver(RoleAddRequest(name="app"))
    driver(RoleGrantPermissionRequest(name="app", perm=prefix_perm(b"/app/")))
    driver(user_add("alice", "alicepw"))
    driver(UserGrantRoleRequest(user="alice", role="app"))
    if enable:
        driver(AuthEnableRequest())
